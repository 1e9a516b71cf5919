import ExternalProviderStore
import HTTPTypes
import Hummingbird
import OpenAPIRuntime

/// Every answer but a 200: a status and one sentence, sent as `text/plain; charset=utf-8`.
/// The sentence names the field or the problem and never carries key material.
struct Problem: Error, HTTPResponseError, Equatable {
    static let maxBodyBytes = 64 * 1024

    static let notFound = Problem(.notFound, "There is no such path on this server.", answeredBeforeBody: true)
    static let unsupportedMediaType = Problem(.unsupportedMediaType, "Content-Type must be application/json.", answeredBeforeBody: true)
    static let contentTooLarge = Problem(.contentTooLarge, "The request body must be at most \(maxBodyBytes) bytes.", answeredBeforeBody: true)
    static let missingBody = Problem(.badRequest, "A JSON request body is required.")
    static let internalServerError = Problem(.internalServerError, "Internal Server Error")
    static let unauthorized = Problem(.unauthorized, "Invalid Authentication: missing or unknown X-Application-ID", answeredBeforeBody: true)
    static let forbiddenHost = Problem(
        .forbidden, "The Host header does not name this server; start it with --allow-host NAME to serve another name.", answeredBeforeBody: true)
    static let forbiddenOrigin = Problem(
        .forbidden, "Requests from this Origin are not allowed; start the server with --allow-origin ORIGIN to allow a web page.",
        answeredBeforeBody: true)

    static func missingScope(_ scope: ApplicationScope) -> Problem {
        let what =
            switch scope {
            case .keys: "the key operations"
            case .relay: "the relay and the model list"
            case .admin: "the usage ledger"
            }
        return Problem(
            .forbidden, "This application lacks the '\(scope.rawValue)' scope, which \(what) need; register one with `apps create NAME --scope \(scope.rawValue)`.",
            answeredBeforeBody: true)
    }

    static let boundToAnotherUser = Problem(.forbidden, "This application is bound to one user and may not use another user's key.")

    static func tooManyFailedAttempts(retryAfter seconds: Int) -> Problem {
        Problem(
            .tooManyRequests, "Too many failed X-Application-ID attempts from this address; retry after \(seconds) seconds.",
            headers: [.retryAfter: "\(seconds)"], answeredBeforeBody: true)
    }

    static func methodNotAllowed(_ allowed: [HTTPRequest.Method]) -> Problem {
        let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
        return Problem(.methodNotAllowed, "This path accepts \(names) only.", headers: [.allow: names], answeredBeforeBody: true)
    }

    /// The store's database is down or restarting. The request may or may not have been applied, since a
    /// commit may have been cut off; sending it again is safe, as every operation is idempotent or says 409.
    static let storeUnavailable = Problem(
        .serviceUnavailable, "The key store cannot be reached just now; send the request again shortly.", headers: [.retryAfter: "1"])

    static let notReady = Problem(
        .serviceUnavailable, "Not ready: the key store did not answer a trivial query within \(Readiness.budget).", headers: [.retryAfter: "1"])

    static func badRequest(_ message: String) -> Problem {
        Problem(.badRequest, message)
    }

    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]
    /// Whether this answer is given without reading the request's body. If the request has one, the
    /// connection is closed after the answer (`ConnectionGuardHandler`) rather than kept open while the
    /// client sends, perhaps very slowly, a body nobody will read.
    let answeredBeforeBody: Bool

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:], answeredBeforeBody: Bool = false) {
        self.status = status
        self.message = message
        self.headers = headers
        self.answeredBeforeBody = answeredBeforeBody
    }

    static let contentType = "text/plain; charset=utf-8"

    var fields: HTTPFields {
        var fields = headers
        fields[.contentType] = Self.contentType
        return fields
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response(to: request)
    }

    /// The answer to `request`, which closes the connection if the request's body goes unread.
    func response(to request: Request) -> Response {
        var fields = fields
        if answeredBeforeBody, Self.hasBody(request) { fields[.connection] = "close" }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: message)))
    }

    private static func hasBody(_ request: Request) -> Bool {
        if request.headers[.transferEncoding] != nil { return true }
        return request.headers[.contentLength].map { $0 != "0" } ?? false
    }

    /// The same answer, for code that speaks the OpenAPI runtime's types.
    var openAPIResponse: (HTTPResponse, HTTPBody) {
        (HTTPResponse(status: status, headerFields: fields), HTTPBody(message))
    }
}

import HTTPTypes
import Hummingbird
import OpenAPIRuntime

/// Every answer but a 200: a status and one sentence, sent as `text/plain; charset=utf-8`.
/// The sentence names the field or the problem and never carries key material.
struct Problem: Error, HTTPResponseError, Equatable {
    static let maxBodyBytes = 64 * 1024

    static let notFound = Problem(.notFound, "There is no such path on this server.")
    static let unsupportedMediaType = Problem(.unsupportedMediaType, "Content-Type must be application/json.")
    static let contentTooLarge = Problem(.contentTooLarge, "The request body must be at most \(maxBodyBytes) bytes.")
    static let missingBody = Problem(.badRequest, "A JSON request body is required.")
    static let internalServerError = Problem(.internalServerError, "Internal Server Error")
    static let unauthorized = Problem(.unauthorized, "Invalid Authentication: missing or unknown X-Application-ID")
    static let forbiddenHost = Problem(
        .forbidden, "The Host header does not name this server; start it with --allow-host NAME to serve another name.")
    static let forbiddenOrigin = Problem(
        .forbidden, "Requests from this Origin are not allowed; start the server with --allow-origin ORIGIN to allow a web page.")

    static func tooManyFailedAttempts(retryAfter seconds: Int) -> Problem {
        Problem(
            .tooManyRequests, "Too many failed X-Application-ID attempts from this address; retry after \(seconds) seconds.",
            headers: [.retryAfter: "\(seconds)"])
    }

    static func methodNotAllowed(_ allowed: [HTTPRequest.Method]) -> Problem {
        let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
        return Problem(.methodNotAllowed, "This path accepts \(names) only.", headers: [.allow: names])
    }

    static func badRequest(_ message: String) -> Problem {
        Problem(.badRequest, message)
    }

    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    static let contentType = "text/plain; charset=utf-8"

    var fields: HTTPFields {
        var fields = headers
        fields[.contentType] = Self.contentType
        return fields
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }

    var response: Response {
        Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: message)))
    }

    /// The same answer, for code that speaks the OpenAPI runtime's types.
    var openAPIResponse: (HTTPResponse, HTTPBody) {
        (HTTPResponse(status: status, headerFields: fields), HTTPBody(message))
    }
}

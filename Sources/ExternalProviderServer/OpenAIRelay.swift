import AsyncHTTPClient
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Puts a stored key to work without handing it out: `/open_ai/v1/{path}` is forwarded to
/// `{base}/v1/{path}` with the user's key added on the way out. Query and body pass unchanged, both ways
/// streamed, so a server-sent-events chat completion reaches the client event by event.
public struct OpenAIRelay: Sendable {
    static let pathPrefix = "/open_ai/v1"
    /// `open_ai` and `v1`: what the route itself takes of a path.
    static let routeSegments = 2
    static var userHeader: HTTPField.Name { HTTPField.Name("X-User-ID")! }

    let store: any KeyStore
    let clients: RelayClients
    let baseURL: String
    let maxBodyBytes: Int
    /// Until the response head: a model may think for minutes before its first token.
    let timeout: TimeAmount
    let health: KeyHealthReporter
    let logger: Logger
    /// Times OpenAI's answers; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let path = try RelayPath(rawPath: request.uri.path, routeSegments: Self.routeSegments)
        let user = try Self.user(for: request, application: context.application)
        guard let key = try await store.account(for: user)?.keys[.openAI] else {
            throw Problem(.notFound, "User '\(user)' has no OpenAI key: store one with /external_provider/api_key/create first.")
        }
        let body: OutgoingBody
        do {
            body = try await OutgoingBody.read(request, limit: maxBodyBytes)
        } catch {
            throw Self.problem(for: error, maxBodyBytes: maxBodyBytes)
        }
        let upstream = upstreamRequest(for: request, path: path, key: key, body: body)
        let presence = await ClientPresence.of(context.channel)
        let started = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await send(upstream, canBeSentAgain: body.canBeSentAgain, presence: presence)
        } catch {
            await body.close()
            throw Self.problem(for: error, maxBodyBytes: maxBodyBytes)
        }
        metrics?.upstreamAnswered(after: ContinuousClock.now - started)
        let status = Int(response.status.code)
        logger.debug(
            "relayed to OpenAI",
            metadata: [
                "http.path": "\(RequestLogMiddleware.loggable(path: request.uri.path))", "upstream.status": "\(status)",
                "upstream.ttfb_ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
                "application": "\(context.application?.name ?? "")",
            ])
        if (300..<400).contains(status) {
            await body.close()
            throw Problem(.badGateway, "OpenAI answered with a redirect (\(status)), which is not followed because it would send the key elsewhere.")
        }
        let credentials = ProviderCredentials(.openAI, key)
        if status == 401 {
            do {
                let answer = try await rejectedKeyResponse(response, user: user, credentials: credentials)
                await body.close()
                return answer
            } catch {
                await body.close()
                throw error
            }
        }
        if (200..<300).contains(status) {
            // Off the answer's path: at most one write a minute per key, and the answer need not wait.
            Task { [health] in await health.accepted(credentials, of: user) }
        }
        return Response(
            status: .init(code: status, reasonPhrase: response.status.reasonPhrase),
            headers: Self.passedBack(response.headers),
            body: ResponseBody(contentLength: Self.contentLength(response.headers)) { writer in
                do {
                    for try await chunk in response.body {
                        try await writer.write(chunk)
                    }
                    try await writer.finish(nil)
                } catch {
                    await body.close()
                    throw error
                }
                // Upstream may have answered before reading the whole body; the server reads the rest.
                await body.close()
            }
        )
    }

    /// Sends the request and waits for the answer to begin, unless the client leaves first: then the
    /// upstream request is cancelled. A request whose pooled connection turns out to have been closed by
    /// the upstream (it closed an idle keep-alive connection without saying so) goes once more, on a new
    /// connection, if its body can be sent again.
    private func send(_ request: HTTPClientRequest, canBeSentAgain: Bool, presence: ClientPresence?) async throws -> HTTPClientResponse {
        let deadline = NIODeadline.now() + timeout
        do {
            return try await Self.untilClientLeaves(presence) { [clients] in
                try await clients.pooled.execute(request, deadline: deadline, logger: RelayClients.quiet)
            }
        } catch where canBeSentAgain && UpstreamFailure.isClosedConnection(error) {
            logger.debug("a pooled connection to OpenAI was closed; sending the request again on a new connection")
            var again = request
            again.headers.replaceOrAdd(name: "Connection", value: "close")
            return try await Self.untilClientLeaves(presence) { [clients, again] in
                try await clients.fresh.execute(again, deadline: deadline, logger: RelayClients.quiet)
            }
        }
    }

    /// `work`'s answer, or `ClientLeft` as soon as the client is gone, with `work` cancelled.
    static func untilClientLeaves(
        _ presence: ClientPresence?, _ work: @escaping @Sendable () async throws -> HTTPClientResponse
    ) async throws -> HTTPClientResponse {
        guard let presence else { return try await work() }
        return try await withThrowingTaskGroup(of: HTTPClientResponse?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                await presence.untilGone()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else { throw ClientLeft() }
            return response
        }
    }

    /// The client closed its connection before the answer began.
    struct ClientLeft: Error {}

    /// OpenAI refused the stored key: its answer passes through as it is (OpenAI's clients read it), and
    /// the log says whose key and why, never the key.
    private func rejectedKeyResponse(_ response: HTTPClientResponse, user: UserID, credentials: ProviderCredentials) async throws -> Response {
        let body = try await response.body.collect(upTo: OpenAIKeyVerifier.maxBodyBytes)
        let code = OpenAIKeyVerifier.errorCode(in: Data(buffer: body)) ?? "unknown"
        logger.warning("OpenAI rejected the stored key", metadata: ["user": "\(user)", "openai.error_code": "\(code)"])
        await health.rejected(credentials, of: user, code: code)
        return Response(status: .unauthorized, headers: Self.passedBack(response.headers), body: .init(byteBuffer: body))
    }

    /// Whose key: the application's bound user, or the one it names in `X-User-ID`.
    static func user(for request: Request, application: ApplicationGrant?) throws -> UserID {
        let named = request.headers[userHeader]
        if let bound = application?.boundUser {
            if let named, application?.mayUseKey(of: named) == false { throw Problem.boundToAnotherUser }
            return UserID(trusted: bound)
        }
        guard let named else {
            throw Problem(.badRequest, "Header 'X-User-ID' is required: name the user whose OpenAI key to use, or bind the application to one (apps create NAME --user USER).")
        }
        do {
            return try UserID(validating: named)
        } catch {
            throw Problem(.badRequest, error.message.replacingOccurrences(of: "Field 'user'", with: "Header 'X-User-ID'"))
        }
    }

    /// The request to OpenAI: the caller's path under the API root, its query and headers, the stored
    /// key, and the body as read ahead.
    private func upstreamRequest(for request: Request, path: RelayPath, key: ProviderKey, body: OutgoingBody) -> HTTPClientRequest {
        var upstream = HTTPClientRequest(url: path.url(base: baseURL + "/v1", query: request.uri.query))
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        upstream.headers.add(name: "Authorization", value: "Bearer \(key.apiKey)")
        if let organization = key.organizationKey {
            upstream.headers.add(name: "OpenAI-Organization", value: organization)
        }
        switch body {
        case .none: break
        case .complete(let buffer): upstream.body = .bytes(buffer)
        case .streaming(let upload):
            let declared = request.headers[.contentLength].flatMap(Int64.init)
            upstream.body = .stream(upload, length: declared.map { .known($0) } ?? .unknown)
        }
        return upstream
    }

    /// The caller's credentials, its choice of organization or project (the stored key decides), cookies,
    /// the host and hop-by-hop headers stay here. Lengths are set again for the body as it is sent.
    static let droppedRequestHeaders = Set([
        "authorization", "x-application-id", "x-user-id", "openai-organization", "openai-project", "cookie", "host",
        "content-length", "expect",
    ]).union(hopByHopHeaders)

    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    static func passedBack(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            let lowered = name.lowercased()
            guard !hopByHopHeaders.contains(lowered), lowered != "set-cookie", lowered != "content-length",
                let fieldName = HTTPField.Name(name)
            else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    static func contentLength(_ headers: HTTPHeaders) -> Int? {
        headers.first(name: "content-length").flatMap(Int.init)
    }

    static func bodyTooLarge(_ limit: Int) -> Problem {
        Problem(.contentTooLarge, "A relayed request body must be at most \(limit) bytes (--relay-max-body).", answeredBeforeBody: true)
    }

    /// Sorts what went wrong before OpenAI's answer began, by the error's type.
    static func problem(for error: any Error, maxBodyBytes: Int) -> Problem {
        if error is RelayUpload.TooLarge { return bodyTooLarge(maxBodyBytes) }
        if error is ClientLeft {
            return Problem(.init(code: 499, reasonPhrase: "Client Closed Request"), "The client closed its connection before the answer began.")
        }
        if error is RequestBodyIncomplete { return Problem(.badRequest, "The request body did not arrive whole.") }
        switch UpstreamFailure(error) {
        case .timedOut:
            return Problem(.gatewayTimeout, "OpenAI did not begin to answer within --relay-timeout.")
        case let failure:
            return Problem(.badGateway, "The request could not be relayed: \(failure.reason).")
        }
    }
}


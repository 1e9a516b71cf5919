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
    static var userHeader: HTTPField.Name { HTTPField.Name("X-User-ID")! }

    let store: any KeyStore
    let client: HTTPClient
    let baseURL: String
    let maxBodyBytes: Int
    /// Until the response head: a model may think for minutes before its first token.
    let timeout: TimeAmount
    let health: KeyHealthReporter
    let logger: Logger
    /// Times OpenAI's answers; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    /// The relay's own client: no redirect is followed (it would take the key elsewhere), connections
    /// are pooled per host as many as the server takes, and a stream may idle up to `timeout`.
    static func makeClient(timeout: TimeAmount, connectTimeout: TimeAmount, maxConnections: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: connectTimeout, read: timeout))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func handle(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try Self.user(for: request, application: context.application)
        guard let key = try await store.account(for: user)?.keys[.openAI] else {
            throw Problem(.notFound, "User '\(user)' has no OpenAI key: store one with /external_provider/api_key/create first.")
        }
        let started = ContinuousClock.now
        let (upstream, upload) = try upstreamRequest(for: request, key: key)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(upstream, deadline: .now() + timeout, logger: logger)
        } catch {
            await upload?.close()
            throw Self.problem(for: error, maxBodyBytes: maxBodyBytes)
        }
        metrics?.upstreamAnswered(after: ContinuousClock.now - started)
        let status = Int(response.status.code)
        logger.debug(
            "relayed to OpenAI",
            metadata: [
                "http.path": "\(request.uri.path)", "upstream.status": "\(status)",
                "upstream.ttfb_ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
                "application": "\(context.application?.name ?? "")",
            ])
        if (300..<400).contains(status) {
            await upload?.close()
            throw Problem(.badGateway, "OpenAI answered with a redirect (\(status)), which is not followed because it would send the key elsewhere.")
        }
        let credentials = ProviderCredentials(.openAI, key)
        if status == 401 {
            do {
                let answer = try await rejectedKeyResponse(response, user: user, credentials: credentials)
                await upload?.close()
                return answer
            } catch {
                await upload?.close()
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
                    await upload?.close()
                    throw error
                }
                // Upstream may have answered before reading the whole body; the server reads the rest.
                await upload?.close()
            }
        )
    }

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

    /// The request to OpenAI, and the upload of its body, if it has one, which must be closed before the
    /// relay's answer is complete.
    private func upstreamRequest(for request: Request, key: ProviderKey) throws -> (HTTPClientRequest, RelayUpload?) {
        var url = baseURL + "/v1" + request.uri.path.dropFirst(Self.pathPrefix.count)
        if let query = request.uri.query { url += "?" + query }
        var upstream = HTTPClientRequest(url: url)
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        upstream.headers.add(name: "Authorization", value: "Bearer \(key.apiKey)")
        if let organization = key.organizationKey {
            upstream.headers.add(name: "OpenAI-Organization", value: organization)
        }
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > maxBodyBytes { throw Self.bodyTooLarge(maxBodyBytes) }
        guard (declared ?? 0) > 0 || (declared == nil && request.headers[.transferEncoding] != nil) else { return (upstream, nil) }
        let upload = RelayUpload(request.body, limit: maxBodyBytes)
        upstream.body = .stream(upload, length: declared.map { .known(Int64($0)) } ?? .unknown)
        return (upstream, upload)
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
        switch UpstreamFailure(error) {
        case .timedOut:
            return Problem(.gatewayTimeout, "OpenAI did not begin to answer within --relay-timeout.")
        case let failure:
            return Problem(.badGateway, "The request could not be relayed: \(failure.reason).")
        }
    }
}

/// The request body on its way to OpenAI. It ends with `TooLarge` once it passes the limit, so a body of
/// no declared length (chunked) cannot stream on without bound. And it can be closed: an upstream may
/// answer before it has read the whole body, and once the relay has answered, the server reads what is
/// left of the body itself. Two readers of one body at once would break it, so `close()` waits for a read
/// in flight, and reads after it end the stream without touching the body.
final class RelayUpload: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct TooLarge: Error {}

    private struct State {
        var reading = false
        var closed = false
        var seen = 0
        var closers: [CheckedContinuation<Void, Never>] = []
    }

    /// Read by one reader at a time, which `State.reading` ensures.
    private final class Body: @unchecked Sendable {
        var iterator: RequestBody.AsyncIterator
        init(_ body: RequestBody) { iterator = body.makeAsyncIterator() }
    }

    private let body: Body
    private let limit: Int
    private let state = Mutex(State())

    init(_ body: RequestBody, limit: Int) {
        self.body = Body(body)
        self.limit = limit
    }

    func read() async throws -> ByteBuffer? {
        let open = state.withLock { state in
            guard !state.closed else { return false }
            state.reading = true
            return true
        }
        guard open else { return nil }
        let chunk: ByteBuffer?
        do {
            chunk = try await body.iterator.next()
        } catch {
            finishRead(adding: 0)
            throw error
        }
        guard finishRead(adding: chunk?.readableBytes ?? 0) <= limit else { throw TooLarge() }
        return chunk
    }

    /// After this returns, nothing here reads the body again.
    func close() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                state.closed = true
                guard state.reading else { return true }
                state.closers.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    @discardableResult
    private func finishRead(adding count: Int) -> Int {
        let (seen, closers) = state.withLock { state in
            state.reading = false
            state.seen += count
            defer { state.closers = [] }
            return (state.seen, state.closers)
        }
        for closer in closers { closer.resume() }
        return seen
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let upload: RelayUpload
        mutating func next() async throws -> ByteBuffer? { try await upload.read() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(upload: self) }
}

import AsyncHTTPClient
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Puts a stored key to work without handing it out: a request under a provider's relay route goes to
/// that provider's API root, with the path after the route, the query and the body as sent, and the
/// user's key added on the way out in the provider's own header. The answer streams back as it comes, so
/// a server-sent-events completion reaches the client event by event.
struct Relay: Sendable {
    static var userHeader: HTTPField.Name { HTTPField.Name("X-User-ID")! }

    let store: any KeyStore
    let clients: RelayClients
    let roots: ProviderRoots
    let maxBodyBytes: Int
    /// Until the response head: a model may think for minutes before its first token.
    let timeout: TimeAmount
    let health: KeyHealthReporter
    /// The applications' limits, and the ledger that counts what passed them.
    let gate: PolicyGate
    /// Bounds the memory of bodies read ahead past `OutgoingBody.replayable`.
    let largeBodies: LargeBodySlots
    let logger: Logger
    /// Times providers' answers; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    /// Relays `request` to `provider`; `routeSegments` is how many segments of the path the route itself
    /// takes (`/open_ai/v1`: 2; `/relay/anthropic`: 2). The application's policy is applied first
    /// (`PolicyGate`); a request it lets through gets one ledger entry, whatever its answer.
    func handle(_ request: Request, context: AppRequestContext, to provider: Provider, routeSegments: Int) async throws -> Response {
        let started = ContinuousClock.now
        let path = try RelayPath(rawPath: request.uri.path, routeSegments: routeSegments)
        let headers = try RelayHeaders(request.headers, query: request.uri.query)
        guard let grant = context.facts.application else { throw Problem.unauthorized }
        let user = try Self.user(for: request, application: grant, provider: provider)
        try gate.checkProvider(provider, for: grant)
        guard let key = try await store.account(for: user)?.keys[provider] else {
            throw Problem(.notFound, Self.noKey(user, provider))
        }
        let spender = Spender(application: grant.name, user: user)
        try await gate.admit(spender, policy: grant.policy)
        let body: OutgoingBody
        do {
            let readAhead = PolicyGate.readsBody(grant.policy) ? PolicyGate.modelReadLimit : OutgoingBody.replayable
            body = try await OutgoingBody.read(request, limit: maxBodyBytes, readAhead: readAhead, largeBodies: largeBodies)
        } catch {
            throw problem(for: error, provider: provider)
        }
        let segments = path.decodedRemainder
        let content = body.whole
        let relayed = provider.profile.relayedRequest(method: request.method.rawValue, segments: segments, body: content, bodyWhole: content != nil)
        let model: String?
        do {
            model = try gate.checkRequest(relayed, for: grant)
        } catch {
            body.release(largeBodies)
            await body.close()
            throw error
        }
        let budgeted = !grant.policy.budgets.isEmpty
        let entry = LedgerTicket(
            spender: spender, provider: provider, model: model, requestID: context.facts.id, started: started, budgeted: budgeted,
            recorder: gate.recorder)
        let upstream = headers.upstreamRequest(
            method: request.method, url: path.url(base: roots[provider], query: request.uri.query), key: key, provider: provider, body: body,
            declaredLength: request.headers[.contentLength].flatMap(Int64.init))
        // A client with a token budget that leaves cannot take the tokens spent with it: its request runs
        // on and its answer is read to the end, to be counted.
        let presence = budgeted ? nil : await ClientPresence.of(context.channel)
        let response: HTTPClientResponse
        do {
            defer { body.release(largeBodies) }
            response = try await send(upstream, provider: provider, canBeSentAgain: body.canBeSentAgain, presence: presence)
        } catch {
            await body.close()
            let problem = problem(for: error, provider: provider)
            entry.record(status: Int(problem.status.code))
            throw problem
        }
        let status = Int(response.status.code)
        metrics?.relayed(to: provider, status: status, after: ContinuousClock.now - started)
        logger.debug(
            "relayed",
            metadata: [
                "provider": "\(provider.name)", "http.path": "\(RequestLogMiddleware.loggable(path: request.uri.path))",
                "upstream.status": "\(status)", "upstream.ttfb_ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
            ])
        if (300..<400).contains(status) {
            await body.close()
            entry.record(status: 502)
            throw Problem(
                .badGateway, "\(provider.displayName) answered with a redirect (\(status)), which is not followed because it would send the key elsewhere.")
        }
        let credentials = ProviderCredentials(provider, key)
        if provider.profile.refusalStatuses.contains(status) {
            // Read whole to see whether it refuses the key; it passes through as it is all the same.
            return try await Self.answeredWhole(body: body, entry: entry, status: status) {
                try await refusal(response, user: user, credentials: credentials)
            }
        }
        if (200..<300).contains(status) {
            // Off the answer's path: at most one write a minute per key, and the answer need not wait.
            health.acceptedInBackground(credentials, of: user)
            if relayed.model == .listing, grant.policy.models != nil {
                return try await Self.answeredWhole(body: body, entry: entry, status: status) {
                    try await ModelListFilter.filtered(response, for: grant.policy)
                }
            }
        }
        // Only a generation's answer is read for usage: a file's content, say, could claim any.
        return Self.passedThrough(response, status: status, metering: relayed.spendsTokens, entry: entry, body: body)
    }

    /// An answer made from the provider's read whole: the request's body is done with, and the ledger
    /// has the entry, whatever happens.
    private static func answeredWhole(
        body: OutgoingBody, entry: LedgerTicket, status: Int, _ answer: () async throws -> Response
    ) async throws -> Response {
        defer { entry.record(status: status) }
        do {
            let made = try await answer()
            await body.close()
            return made
        } catch {
            await body.close()
            throw error
        }
    }

    /// The provider's answer as it comes, chunk by chunk, its usage read on the way (`metering`) for the
    /// ledger entry recorded at its end.
    private static func passedThrough(
        _ response: HTTPClientResponse, status: Int, metering: Bool, entry: LedgerTicket, body: OutgoingBody
    ) -> Response {
        Response(
            status: .init(code: status, reasonPhrase: response.status.reasonPhrase),
            headers: RelayHeaders.passedBack(response.headers),
            body: ResponseBody(contentLength: RelayHeaders.contentLength(response.headers)) { writer in
                var meter = UsageMeter(contentType: response.headers.first(name: "content-type"), reading: metering)
                var clientLeft = false
                do {
                    for try await chunk in response.body {
                        chunk.withUnsafeReadableBytes { meter.consume($0) }
                        guard !clientLeft else { continue }
                        do {
                            try await writer.write(chunk)
                        } catch where entry.budgeted {
                            // The answer is read to its end all the same, so that a client cannot spend
                            // without being counted by leaving before the usage arrives.
                            clientLeft = true
                        }
                    }
                    if !clientLeft { try await writer.finish(nil) }
                } catch {
                    entry.record(status: status, tokens: meter.finish())
                    await body.close()
                    throw error
                }
                entry.record(status: status, tokens: meter.finish())
                // Upstream may have answered before reading the whole body; the server reads the rest.
                await body.close()
            }
        )
    }

    /// Sends the request and waits for the answer to begin, unless the client leaves first: then the
    /// upstream request is cancelled. A request whose pooled connection turns out to have been closed by
    /// the upstream (it closed an idle keep-alive connection without saying so) goes once more, on a new
    /// connection, if its body can be sent again.
    private func send(
        _ request: HTTPClientRequest, provider: Provider, canBeSentAgain: Bool, presence: ClientPresence?
    ) async throws -> HTTPClientResponse {
        let deadline = NIODeadline.now() + timeout
        do {
            return try await Self.untilClientLeaves(presence) { [clients] in
                try await clients.pooled.execute(request, deadline: deadline, logger: RelayClients.quiet)
            }
        } catch where canBeSentAgain && UpstreamFailure.isClosedConnection(error) {
            logger.debug("a pooled connection was closed by the provider; sending the request again on a new one", metadata: ["provider": "\(provider.name)"])
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

    /// An answer with a status the provider refuses keys with: if its body says the stored key is
    /// refused, the key turns `rejected` and the log says whose key and why, never the key. Either way the
    /// answer passes through as it is, since the provider's clients read it.
    private func refusal(_ response: HTTPClientResponse, user: UserID, credentials: ProviderCredentials) async throws -> Response {
        let body = try await response.body.collect(upTo: ProviderClient.maxErrorBytes)
        let status = Int(response.status.code)
        if let code = credentials.provider.profile.refusalCode(status, Data(buffer: body)) {
            let provider = credentials.provider
            logger.warning(
                "\(provider.displayName) rejected the stored key", metadata: ["user": "\(user)", "\(provider.name).error_code": "\(code)"])
            await health.rejected(credentials, of: user, code: code)
        }
        return Response(
            status: .init(code: status, reasonPhrase: response.status.reasonPhrase), headers: RelayHeaders.passedBack(response.headers),
            body: .init(byteBuffer: body))
    }

    /// Whose key: the application's bound user, or the one it names in `X-User-ID`.
    static func user(for request: Request, application: ApplicationGrant?, provider: Provider) throws -> UserID {
        let named = request.headers[userHeader]
        if let bound = application?.boundUser {
            if let named, application?.mayUseKey(of: named) == false { throw Problem.boundToAnotherUser }
            return UserID(trusted: bound)
        }
        guard let named else {
            throw Problem(
                .badRequest,
                "Header 'X-User-ID' is required: name the user whose \(provider.displayName) key to use, or bind the application to one (apps create NAME --user USER).")
        }
        do {
            return try UserID(validating: named)
        } catch {
            throw Problem(.badRequest, error.message.replacingOccurrences(of: "Field 'user'", with: "Header 'X-User-ID'"))
        }
    }

    static func noKey(_ user: UserID, _ provider: Provider) -> String {
        provider == .openAI
            ? "User '\(user)' has no OpenAI key: store one with /external_provider/api_key/create first."
            : "User '\(user)' has no \(provider.displayName) key: store one with PUT /v1/users/{user}/keys/\(provider.name) first."
    }

    static func bodyTooLarge(_ limit: Int) -> Problem {
        Problem(
            .contentTooLarge, "A relayed request body must be at most \(limit) bytes (\(ServeSettings.relayMaxBody.declaration.option)).",
            answeredBeforeBody: true)
    }

    /// Sorts what went wrong before the provider's answer began, by the error's type.
    func problem(for error: any Error, provider: Provider) -> Problem {
        switch error {
        case is RelayUpload.TooLarge:
            return Self.bodyTooLarge(maxBodyBytes)
        case is LargeBodySlots.Busy:
            return Problem(
                .serviceUnavailable, "Too many large request bodies are being read at once; send the request again shortly.",
                headers: [.retryAfter: "1"])
        case is ClientLeft:
            return Problem(.init(code: 499, reasonPhrase: "Client Closed Request"), "The client closed its connection before the answer began.")
        case is RequestBodyIncomplete:
            return Problem(.badRequest, "The request body did not arrive whole.")
        default:
            switch UpstreamFailure(error) {
            case .timedOut:
                return Problem(.gatewayTimeout, "\(provider.displayName) did not begin to answer within \(ServeSettings.relayTimeout.declaration.option).")
            case let failure:
                return Problem(.badGateway, "The request could not be relayed: \(failure.reason(provider)).")
            }
        }
    }
}

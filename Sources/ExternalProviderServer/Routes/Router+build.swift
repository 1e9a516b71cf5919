import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Hummingbird
import Logging
import NIOCore
import OpenAPIHummingbird

/// Everything the routes reach, made once by `buildApplication`, or by a test with its own verifier,
/// limiter or clock.
struct ServerParts: Sendable {
    let store: any ServingStore
    /// `nil` when verification is off: keys are stored unchecked.
    var verifier: (any KeyVerifier)?
    var models: any ModelLister
    var health: KeyHealthReporter
    /// `nil` in tests that never relay.
    var relay: Relay?
    var access: AccessPolicy
    var authenticator: Authenticator
    /// `nil` with `--no-metrics`.
    var metrics: ServerMetrics?
    var readinessBudget: Duration = Readiness.budget
}

func buildRouter(_ parts: ServerParts) throws -> Router<AppRequestContext> {
    let routes = RouteTable()
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: RequestLogMiddleware())
    if let metrics = parts.metrics { router.add(middleware: MetricsMiddleware(metrics: metrics)) }
    router.add(middleware: ProtectiveHeadersMiddleware())
    router.add(middleware: BrowserGuardMiddleware(policy: parts.access))
    router.add(middleware: PlainTextErrorMiddleware(routes: routes, metrics: parts.metrics))

    let store = parts.store
    routes.add(to: router, .get, "/health", operation: "health") { _, _ in Response(plainText: "ok") }
    routes.add(to: router, .get, "/ready", operation: "ready") { _, _ in
        guard await Readiness.storeAnswers(store, within: parts.readinessBudget) else { throw Problem.notReady }
        return Response(plainText: "ready")
    }
    if let metrics = parts.metrics {
        // Aggregates only, no user or key in any label, so like /health it needs no application id.
        routes.add(to: router, .get, "/metrics", operation: "metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: try await metrics.exposition(store: store))))
        }
    }
    routes.add(to: router, .get, "/openapi.yaml", operation: "openapi") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try OpenAPIDocument.yaml())))
    }

    if let relay = parts.relay {
        // `/relay/{provider}` stands for each provider's API root, so that its official SDK works with
        // its base URL set there; `/open_ai/v1` is the PiecesOS contract's own root for OpenAI's.
        let roots = [("/open_ai/v1", Provider.openAI)] + Provider.allCases.map { ("/relay/\($0.name)", $0) }
        for (root, provider) in roots {
            let relayed = router.group(RouterPath(root)).add(middleware: ApplicationAuthMiddleware(authenticator: parts.authenticator, scope: .relay))
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
                routes.add(to: relayed, prefix: root, method, "**", operation: "relay") { request, context in
                    try await relay.handle(request, context: context, to: provider, routeSegments: 2)
                }
            }
        }
    }
    let handler = APIHandler(
        keys: KeyService(store: store, verifier: parts.verifier), models: parts.models, health: parts.health, ledger: store)
    try handler.registerHandlers(
        on: RecordingTransport(base: router, table: routes),
        // Compact JSON: the runtime's default pretty-prints, which costs bytes on every answer.
        configuration: .init(jsonEncodingOptions: [.sortedKeys]),
        middlewares: [OperationMiddleware(authenticator: parts.authenticator), JSONBodyMiddleware()]
    )
    return router
}

extension Response {
    init(plainText: String) {
        self.init(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: plainText)))
    }
}

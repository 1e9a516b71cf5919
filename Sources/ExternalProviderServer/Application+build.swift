import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import OpenAPIHummingbird
import ServiceLifecycle

/// What `serve` needs to know; `main` and the tests both build the application from it.
public protocol AppArguments: Sendable {
    var host: String { get }
    var port: Int { get }
    var dataDirectory: String { get }
    var logLevel: Logger.Level { get }
    var masterKeyFile: String? { get }
    var allowedHosts: [String] { get }
    var allowedOrigins: [String] { get }
    /// Whether keys are checked with the provider before they are stored.
    var verifyKeys: Bool { get }
    var openAIBaseURL: String { get }
    /// Seconds for the check's connect and for its read.
    var verifyTimeout: Double { get }
    /// Connections open at once; more are closed as they arrive.
    var maxConnections: Int { get }
    /// Seconds within which a request's head and body must arrive.
    var requestTimeout: Double { get }
    /// Bytes a relayed request body may have.
    var relayMaxBody: Int { get }
    /// Seconds the relay waits for OpenAI's answer to begin.
    var relayTimeout: Double { get }
    /// Seconds after which a stored key is checked again; 0: never.
    var recheckInterval: Double { get }
    /// The shared PostgreSQL store; `nil`: the data dir's SQLite store.
    var databaseURL: DatabaseURL? { get }
    /// Whether `serve` applies missing PostgreSQL migrations, or refuses an outdated database.
    var migrate: Bool { get }
    /// Whether `GET /metrics` is served.
    var metrics: Bool { get }
}

extension AppArguments {
    var storeLocation: StoreLocation { databaseURL.map(StoreLocation.postgres) ?? .dataDirectory(dataDirectory) }
}

/// The name of the SQLite file inside the data dir.
public let storeFileName = "external-provider.sqlite"

public func buildApplication(
    _ arguments: some AppArguments,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    logger given: Logger? = nil
) async throws -> some ApplicationProtocol {
    // Every part of the application logs through this one logger (tests pass one that keeps the lines).
    var logger = given ?? Logger(label: "external-provider")
    logger.logLevel = arguments.logLevel
    let serving = try await arguments.storeLocation.openForServing(
        masterKeyFile: arguments.masterKeyFile, environment: environment, migrate: arguments.migrate, logger: logger)
    let store = serving.store
    let access = AccessPolicy(
        boundHost: arguments.host, port: arguments.port,
        allowedHosts: arguments.allowedHosts, allowedOrigins: arguments.allowedOrigins)
    // The store's services (PostgreSQL's client) first: they stop last, after the server.
    var services: [any Service] = serving.services + [MemoryTrimmer(logger: logger)]
    let verifyTimeout = TimeAmount(seconds: arguments.verifyTimeout)
    let openAIClient = OpenAIKeyVerifier.makeClient(timeout: verifyTimeout)
    services.append(HTTPClientService(client: openAIClient))
    // The same calls check a key before it is stored and list a user's models.
    let openAI = OpenAIKeyVerifier(client: openAIClient, baseURL: arguments.openAIBaseURL, timeout: verifyTimeout, logger: logger)
    let health = KeyHealthReporter(store: store, logger: logger)
    let metrics = arguments.metrics ? ServerMetrics() : nil
    let verifier: any KeyVerifier = metrics.map { CountedVerifier(base: openAI, metrics: $0) } ?? openAI
    if !arguments.verifyKeys {
        logger.notice("key verification is off: keys are stored without checking them with OpenAI, and never re-checked")
    } else if arguments.recheckInterval > 0 {
        services.append(KeyRechecker(store: store, verifier: verifier, interval: arguments.recheckInterval, logger: logger))
    }
    let connections = ConnectionLimit(maximum: connectionCap(arguments.maxConnections, logger: logger))
    let relayTimeout = TimeAmount(seconds: arguments.relayTimeout)
    let relayClients = RelayClients(timeout: relayTimeout, connectTimeout: verifyTimeout, maxConnections: connections.maximum)
    services += relayClients.all.map(HTTPClientService.init)
    let relay = OpenAIRelay(
        store: store, clients: relayClients, baseURL: OpenAIKeyVerifier.trimmedBaseURL(arguments.openAIBaseURL),
        maxBodyBytes: arguments.relayMaxBody, timeout: relayTimeout, health: health, logger: logger, metrics: metrics)
    let requestTimeout = TimeAmount(seconds: arguments.requestTimeout)
    let limiter = FailedAttemptLimiter()
    services.append(RefusalSummary(limiter: limiter, logger: logger))
    let connectionLogger = logger
    var app = Application(
        router: try buildRouter(
            store, verifier: arguments.verifyKeys ? verifier : nil, models: openAI, health: health, relay: relay, access: access,
            limiter: limiter, metrics: metrics, logger: logger),
        // Any local process can connect: an idle connection, a slow request and too many connections
        // must not hold descriptors forever.
        server: .http1(configuration: .init(
            additionalChannelHandlers: [ConnectionGuardHandler(limit: connections, requestTimeout: requestTimeout, logger: connectionLogger)],
            idleTimeout: .seconds(60))),
        configuration: .init(address: .hostname(arguments.host, port: arguments.port), serverName: nil),
        services: services,
        // Said only once listening, so that a start that fails prints nothing but its one error line.
        onServerRunning: { [logger] channel in
            let port = channel.localAddress?.port ?? arguments.port
            access.listening(on: port)
            // With --port 0 the system picks the port: this line says which.
            logger.info(
                "serving",
                metadata: ["port": "\(port)", "store": "\(arguments.storeLocation.description)", "schema.migration": "\(DataVersion.current)"])
        },
        logger: logger
    )
    app.beforeServerStarts(perform: serving.prepare)
    return app
}

extension TimeAmount {
    /// A setting's seconds, to the millisecond.
    init(seconds: Double) {
        self = .milliseconds(Int64(seconds * 1000))
    }
}

/// `--max-connections`, lowered if the descriptor limit (raised to its hard limit first) leaves too few
/// for it: each connection holds one, and the store, its WAL and the verifier's connections need some.
private func connectionCap(_ requested: Int, logger: Logger) -> Int {
    let reservedDescriptors = 64
    let available = ProcessHardening.raiseDescriptorLimit() - reservedDescriptors
    guard requested > available else { return requested }
    logger.warning(
        "--max-connections is above what the descriptor limit allows; raise the hard limit (ulimit -Hn) to serve more",
        metadata: ["max_connections.requested": "\(requested)", "max_connections": "\(max(1, available))"])
    return max(1, available)
}

func buildRouter(
    _ store: any KeyStore & ApplicationRegistry,
    verifier: (any KeyVerifier)? = nil,
    models: any ModelLister,
    health: KeyHealthReporter,
    relay: OpenAIRelay? = nil,
    access: AccessPolicy,
    limiter: FailedAttemptLimiter = FailedAttemptLimiter(),
    recentlyValid: RecentlyValidApplications = RecentlyValidApplications(),
    metrics: ServerMetrics? = nil,
    readinessBudget: Duration = Readiness.budget,
    logger: Logger
) throws -> Router<AppRequestContext> {
    let routes = RouteTable()
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: RequestLogMiddleware())
    if let metrics { router.add(middleware: MetricsMiddleware(metrics: metrics)) }
    router.add(middleware: ProtectiveHeadersMiddleware())
    router.add(middleware: BrowserGuardMiddleware(policy: access))
    router.add(middleware: PlainTextErrorMiddleware(routes: routes, metrics: metrics))

    router.get("/health") { _, _ in "ok" }
    routes.record(.get, "/health")
    router.get("/ready") { _, _ in
        guard await Readiness.storeAnswers(store, within: readinessBudget) else { throw Problem.notReady }
        return "ready"
    }
    routes.record(.get, "/ready")
    if let metrics {
        // Aggregates only, no user or key in any label, so like /health it needs no application id.
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: try await metrics.exposition(store: store))))
        }
        routes.record(.get, "/metrics")
    }
    router.get("/openapi.yaml") { _, _ in
        Response(
            status: .ok,
            headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try OpenAPIDocument.yaml()))
        )
    }
    routes.record(.get, "/openapi.yaml")

    let authentication = ApplicationAuthMiddleware(registry: store, limiter: limiter, recentlyValid: recentlyValid, metrics: metrics)
    if let relay {
        let relayed = router.group(RouterPath(OpenAIRelay.pathPrefix))
            .add(middleware: authentication)
            .add(middleware: RequireScopeMiddleware(scope: .relay))
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            relayed.on("**", method: method) { request, context in try await relay.handle(request, context: context) }
            routes.record(method, OpenAIRelay.pathPrefix + "/**")
        }
    }
    let api = router.group().add(middleware: authentication)
    try ExternalProviderHandler(keys: KeyService(store: store, verifier: verifier), models: models, health: health).registerHandlers(
        on: RecordingTransport(base: api, table: routes),
        // Compact JSON: the runtime's default pretty-prints, which costs bytes on every answer.
        configuration: .init(jsonEncodingOptions: [.sortedKeys]),
        middlewares: [OperationScopeMiddleware(), JSONBodyMiddleware()]
    )
    return router
}

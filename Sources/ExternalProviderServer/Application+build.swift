import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The application `serve` runs, built from its settings, each read where it is used: the store, the
/// providers' client, the relay, the background services and the router. Every setting is read before
/// anything is opened, so a malformed one fails the start in one line and changes nothing.
public func buildApplication(_ settings: Settings, logger given: Logger? = nil) async throws -> some ApplicationProtocol {
    let host = try settings.value(ServeSettings.host)
    let port = try settings.value(ServeSettings.port)
    let location = try StoreLocation(settings)
    let migrate = try settings.value(ServeSettings.migrate)
    let verifyKeys = try settings.value(ServeSettings.verifyKeys)
    let verifyTimeout = TimeAmount(seconds: try settings.value(ServeSettings.verifyTimeout))
    let recheckInterval = try settings.value(ServeSettings.recheckInterval)
    let relayTimeout = TimeAmount(seconds: try settings.value(ServeSettings.relayTimeout))
    let relayMaxBody = try settings.value(ServeSettings.relayMaxBody)
    let requestTimeout = TimeAmount(seconds: try settings.value(ServeSettings.requestTimeout))
    let maxConnections = try settings.value(ServeSettings.maxConnections)
    let usageRetention = try settings.value(ServeSettings.usageRetention)
    let usageQueue = try settings.value(ServeSettings.usageQueue)
    var baseURLs: [Provider: String] = [:]
    for (provider, setting) in ServeSettings.baseURLs { baseURLs[provider] = try settings.value(setting) }
    let roots = ProviderRoots(baseURLs: baseURLs)
    let access = AccessPolicy(
        boundHost: host, port: port, allowedHosts: settings.value(ServeSettings.allowHost), allowedOrigins: settings.value(ServeSettings.allowOrigin))
    let metrics = try settings.value(ServeSettings.metrics) ? ServerMetrics() : nil

    // Every part of the application logs through this one logger (tests pass one that keeps the lines).
    var logger = given ?? Logger(label: "external-provider")
    logger.logLevel = try settings.value(ServeSettings.logLevel)
    let serving = try await location.openForServing(migrate: migrate, logger: logger)
    let store = serving.store
    // The store's services (PostgreSQL's client) first: they stop last, after the server.
    var services: [any Service] = serving.services + [MemoryTrimmer(logger: logger)]
    let checks = ProviderClient.makeClient(timeout: verifyTimeout)
    services.append(HTTPClientService(client: checks))
    // The same calls check a key before it is stored and list a user's models.
    let providers = ProviderClient(client: checks, roots: roots, timeout: verifyTimeout, logger: logger)
    let health = KeyHealthReporter(store: store, logger: logger)
    let verifier: any KeyVerifier = metrics.map { CountedVerifier(base: providers, metrics: $0) } ?? providers
    if !verifyKeys {
        logger.notice("key verification is off: keys are stored without checking them with their provider, and never re-checked")
    } else if recheckInterval > 0 {
        services += Provider.allCases.map { KeyRechecker(provider: $0, store: store, verifier: verifier, interval: recheckInterval, logger: logger) }
    }
    let connections = ConnectionLimit(maximum: connectionCap(maxConnections, logger: logger))
    let relayClients = RelayClients(timeout: relayTimeout, connectTimeout: verifyTimeout, maxConnections: connections.maximum)
    services += relayClients.all.map(HTTPClientService.init)
    // The ledger's writer stops after the server, so that the answers still streaming at shutdown are recorded.
    let recorder = UsageRecorder(ledger: store, capacity: usageQueue, metrics: metrics, logger: logger)
    // Weakly: the recorder holds the metrics, and a cycle would keep the store open past the end, leaving
    // SQLite's WAL behind.
    metrics?.observeUsageQueue { [weak recorder] in recorder?.queued ?? 0 }
    let rate = RequestRate()
    services += [recorder, UsageHousekeeping(ledger: store, retention: usageRetention, rate: rate, logger: logger)] as [any Service]
    let relay = Relay(
        store: store, clients: relayClients, roots: roots, maxBodyBytes: relayMaxBody, timeout: relayTimeout, health: health,
        gate: PolicyGate(recorder: recorder, rate: rate, metrics: metrics), largeBodies: LargeBodySlots(), logger: logger, metrics: metrics)
    let limiter = FailedAttemptLimiter()
    services.append(RefusalSummary(limiter: limiter, logger: logger))
    let parts = ServerParts(
        store: store, verifier: verifyKeys ? verifier : nil, models: providers, health: health, relay: relay, access: access,
        authenticator: Authenticator(registry: store, limiter: limiter, recentlyValid: RecentlyValidApplications(), metrics: metrics),
        metrics: metrics)
    let connectionLogger = logger
    var app = Application(
        router: try buildRouter(parts),
        // Any local process can connect: an idle connection, a slow request and too many connections
        // must not hold descriptors forever.
        server: .http1(configuration: .init(
            additionalChannelHandlers: [ConnectionGuardHandler(limit: connections, requestTimeout: requestTimeout, logger: connectionLogger)],
            idleTimeout: .seconds(60))),
        configuration: .init(address: .hostname(host, port: port), serverName: nil),
        services: services,
        // Said only once listening, so that a start that fails prints nothing but its one error line.
        onServerRunning: { [logger] channel in
            let bound = channel.localAddress?.port ?? port
            access.listening(on: bound)
            // With --port 0 the system picks the port: this line says which.
            logger.info(
                "serving", metadata: ["port": "\(bound)", "store": "\(location.description)", "schema.migration": "\(DataVersion.current)"])
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
        "\(ServeSettings.maxConnections.declaration.option) is above what the descriptor limit allows; raise the hard limit (ulimit -Hn) to serve more",
        metadata: ["max_connections.requested": "\(requested)", "max_connections": "\(max(1, available))"])
    return max(1, available)
}

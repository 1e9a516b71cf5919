import Hummingbird
import Logging
import ServiceLifecycle

/// Runs the application until SIGTERM or SIGINT, then stops it in order: the listener closes, requests
/// in flight may finish for up to `shutdownTimeout` seconds (relayed streams still open then are cut),
/// and the services behind the server (the store's client among them) stop after it.
public func serveUntilSignalled(_ app: some ApplicationProtocol & Service, shutdownTimeout: Double, logLevel: Logger.Level) async throws {
    var logger = Logger(label: "external-provider")
    logger.logLevel = logLevel
    var configuration = ServiceGroupConfiguration(
        services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(shutdownTimeout * 1000))
    // Once cut, a request has this long to unwind before the process stops waiting for it.
    configuration.maximumCancellationDuration = .seconds(5)
    try await ServiceGroup(configuration: configuration).run()
}

import ArgumentParser
import ExternalProviderServer
import Foundation

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @Option(help: "Address to listen on. Env: EXTERNAL_PROVIDER_HOST. Default: \(ServeSettings.defaultHost).")
    var host: String?

    @Option(help: "Port to listen on. Env: EXTERNAL_PROVIDER_PORT. Default: \(ServeSettings.defaultPort), the SDKs' default.")
    var port: Int?

    @OptionGroup var store: StoreOptions

    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: EXTERNAL_PROVIDER_LOG_LEVEL. Default: info.")
    var logLevel: String?

    @Option(help: "text, or json: one JSON object per line. Env: EXTERNAL_PROVIDER_LOG_FORMAT. Default: text.")
    var logFormat: String?

    @Option(name: .customLong("allow-origin"), help: "A web page origin (https://app.example.com) allowed to call the API; repeatable. Env: EXTERNAL_PROVIDER_ALLOW_ORIGIN, comma-separated. Default: none.")
    var allowedOrigins: [String] = []

    @Option(name: .customLong("allow-host"), help: "Another Host name (or name:port) the server answers to, e.g. behind a proxy; repeatable. Env: EXTERNAL_PROVIDER_ALLOW_HOST, comma-separated.")
    var allowedHosts: [String] = []

    @Flag(inversion: .prefixedNo, help: "Check each new key with OpenAI before storing it. Env: EXTERNAL_PROVIDER_VERIFY_KEYS (true/false). Default: on.")
    var verifyKeys: Bool?

    @Option(name: .customLong("openai-base-url"), help: "Where keys are checked: OpenAI, a proxy or a compatible gateway. Env: EXTERNAL_PROVIDER_OPENAI_BASE_URL. Default: \(OpenAIKeyVerifier.defaultBaseURL).")
    var openAIBaseURL: String?

    @Option(help: "Seconds the check may take to connect, and to answer. Env: EXTERNAL_PROVIDER_VERIFY_TIMEOUT. Default: 10.")
    var verifyTimeout: Double?

    @Option(help: "Connections open at once; more are closed as they arrive. Env: EXTERNAL_PROVIDER_MAX_CONNECTIONS. Default: \(ServeSettings.defaultMaxConnections).")
    var maxConnections: Int?

    @Option(help: "Seconds within which a request's head and body must arrive, or its connection is closed. Env: EXTERNAL_PROVIDER_REQUEST_TIMEOUT. Default: 60.")
    var requestTimeout: Double?

    @Option(help: "Bytes a request relayed to OpenAI may carry (a file or audio upload). Env: EXTERNAL_PROVIDER_RELAY_MAX_BODY. Default: 33554432 (32 MiB).")
    var relayMaxBody: Int?

    @Option(help: "Seconds the relay waits for OpenAI's answer to begin. Env: EXTERNAL_PROVIDER_RELAY_TIMEOUT. Default: 600.")
    var relayTimeout: Double?

    @Option(help: "How often each stored key is checked again with OpenAI: 24h, 90m, 3600 (seconds), or 0 for never. Env: EXTERNAL_PROVIDER_RECHECK_INTERVAL. Default: 24h.")
    var recheckInterval: String?

    @Flag(inversion: .prefixedNo, help: "With --database-url: apply missing migrations at start (under an advisory lock), or with --no-migrate refuse an outdated database. Env: EXTERNAL_PROVIDER_MIGRATE. Default: on.")
    var migrate: Bool?

    @Option(help: "Seconds requests in flight may take to finish after SIGTERM or SIGINT; relayed streams still open then are cut. Env: EXTERNAL_PROVIDER_SHUTDOWN_TIMEOUT. Default: 10.")
    var shutdownTimeout: Double?

    @Flag(inversion: .prefixedNo, help: "Serve GET /metrics (Prometheus text). Env: EXTERNAL_PROVIDER_METRICS (true/false). Default: on.")
    var metrics: Bool?

    @Flag(help: "Allow core dumps of this process. They can hold keys, so they are off unless given.")
    var allowCoreDumps = false

    func run() async throws {
        let settings: ServeSettings
        do {
            settings = try ServeSettings(
                host: host, port: port, dataDirectory: store.dataDir, logLevel: logLevel,
                masterKeyFile: store.masterKeyFile, allowedHosts: allowedHosts, allowedOrigins: allowedOrigins,
                verifyKeys: verifyKeys, openAIBaseURL: openAIBaseURL, verifyTimeout: verifyTimeout,
                maxConnections: maxConnections, requestTimeout: requestTimeout,
                relayMaxBody: relayMaxBody, relayTimeout: relayTimeout, recheckInterval: recheckInterval,
                databaseURL: store.databaseURL, migrate: migrate, logFormat: logFormat, shutdownTimeout: shutdownTimeout,
                metrics: metrics)
        } catch {
            fail("\(error)")
        }
        settings.logFormat.bootstrap()
        if let failure = await ServeFailure.probe(host: settings.host, port: settings.port) {
            fail(failure.description)
        }
        do {
            let app = try await buildApplication(settings)
            try await serveUntilSignalled(app, shutdownTimeout: settings.shutdownTimeout, logLevel: settings.logLevel)
        } catch {
            if let failure = error as? ServeFailure ?? ServeFailure.bind(error, host: settings.host, port: settings.port) {
                fail(failure.description)
            }
            fail("external-provider could not start: \(error)")
        }
    }
}

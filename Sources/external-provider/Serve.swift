import ArgumentParser
import ExternalProviderServer
import Foundation

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @Option(name: .customLong(Setting.host.flag), help: ArgumentHelp(Setting.host.help)) var host: String?
    @Option(name: .customLong(Setting.port.flag), help: ArgumentHelp(Setting.port.help)) var port: Int?
    @OptionGroup var store: StoreOptions
    @Option(name: .customLong(Setting.logLevel.flag), help: ArgumentHelp(Setting.logLevel.help)) var logLevel: String?
    @Option(name: .customLong(Setting.logFormat.flag), help: ArgumentHelp(Setting.logFormat.help)) var logFormat: String?
    @Option(name: .customLong(Setting.allowOrigin.flag), help: ArgumentHelp(Setting.allowOrigin.help)) var allowedOrigins: [String] = []
    @Option(name: .customLong(Setting.allowHost.flag), help: ArgumentHelp(Setting.allowHost.help)) var allowedHosts: [String] = []
    @Flag(name: .customLong(Setting.verifyKeys.flag), inversion: .prefixedNo, help: ArgumentHelp(Setting.verifyKeys.help)) var verifyKeys: Bool?
    @Option(name: .customLong(Setting.openAIBaseURL.flag), help: ArgumentHelp(Setting.openAIBaseURL.help)) var openAIBaseURL: String?
    @Option(name: .customLong(Setting.verifyTimeout.flag), help: ArgumentHelp(Setting.verifyTimeout.help)) var verifyTimeout: Double?
    @Option(name: .customLong(Setting.maxConnections.flag), help: ArgumentHelp(Setting.maxConnections.help)) var maxConnections: Int?
    @Option(name: .customLong(Setting.requestTimeout.flag), help: ArgumentHelp(Setting.requestTimeout.help)) var requestTimeout: Double?
    @Option(name: .customLong(Setting.relayMaxBody.flag), help: ArgumentHelp(Setting.relayMaxBody.help)) var relayMaxBody: Int?
    @Option(name: .customLong(Setting.relayTimeout.flag), help: ArgumentHelp(Setting.relayTimeout.help)) var relayTimeout: Double?
    @Option(name: .customLong(Setting.recheckInterval.flag), help: ArgumentHelp(Setting.recheckInterval.help)) var recheckInterval: String?
    @Flag(name: .customLong(Setting.migrate.flag), inversion: .prefixedNo, help: ArgumentHelp(Setting.migrate.help)) var migrate: Bool?
    @Option(name: .customLong(Setting.shutdownTimeout.flag), help: ArgumentHelp(Setting.shutdownTimeout.help)) var shutdownTimeout: Double?
    @Flag(name: .customLong(Setting.metrics.flag), inversion: .prefixedNo, help: ArgumentHelp(Setting.metrics.help)) var metrics: Bool?

    @Flag(help: "Allow core dumps of this process. They can hold keys, so they are off unless given.")
    var allowCoreDumps = false

    func run() async throws {
        func text(_ value: (any CustomStringConvertible)?) -> String? { value?.description }
        var flags: [Setting: String?] = store.flags
        flags[.host] = host
        flags[.port] = text(port)
        flags[.logLevel] = logLevel
        flags[.logFormat] = logFormat
        flags[.verifyKeys] = text(verifyKeys)
        flags[.openAIBaseURL] = openAIBaseURL
        flags[.verifyTimeout] = text(verifyTimeout)
        flags[.maxConnections] = text(maxConnections)
        flags[.requestTimeout] = text(requestTimeout)
        flags[.relayMaxBody] = text(relayMaxBody)
        flags[.relayTimeout] = text(relayTimeout)
        flags[.recheckInterval] = recheckInterval
        flags[.migrate] = text(migrate)
        flags[.shutdownTimeout] = text(shutdownTimeout)
        flags[.metrics] = text(metrics)
        let given = Settings(flags: flags, lists: [.allowOrigin: allowedOrigins, .allowHost: allowedHosts])
        let settings: ServeSettings
        do {
            settings = try ServeSettings(given)
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

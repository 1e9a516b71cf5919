import ArgumentParser
import ExternalProviderCore
import ExternalProviderServer
import ExternalProviderSetup
import Foundation

/// The only command that runs the server, and the only file here that imports it.
struct Serve: AsyncParsableCommand, MayDumpCore {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP server.", usage: "external-provider serve [<setting> ...] [--allow-core-dumps]",
        discussion: Settings.help(ServeSettings.all))

    /// Every setting, read against `ServeSettings.all`: each is declared there once, help and all.
    @Argument(parsing: .allUnrecognized, help: .hidden) var settings: [String] = []

    @Flag(help: "Allow core dumps of this process. They can hold keys, so they are off unless given.")
    var allowCoreDumps = false

    var allowsCoreDumps: Bool { allowCoreDumps }

    func run() async throws {
        let settings: Settings
        let host: String
        let port: Int
        let logFormat: LogFormat
        do {
            settings = try Settings(arguments: self.settings, known: ServeSettings.all)
            warnOfPasswordInFlag(settings.flagText(StoreSettings.databaseURL.declaration))
            (host, port, logFormat) = (try settings.value(ServeSettings.host), try settings.value(ServeSettings.port), try settings.value(ServeSettings.logFormat))
        } catch {
            fail("\(error)")
        }
        logFormat.bootstrap()
        if let failure = await Listening.probe(host: host, port: port) {
            fail(failure.description)
        }
        do {
            let app = try await buildApplication(settings)
            try await serveUntilSignalled(app, shutdownTimeout: try settings.value(ServeSettings.shutdownTimeout), logLevel: try settings.value(ServeSettings.logLevel))
        } catch {
            if let failure = error as? Fault ?? Listening.failure(error, host: host, port: port) {
                fail(failure.description)
            }
            fail("external-provider could not start: \(error)")
        }
    }
}

import ArgumentParser
import ExternalProviderServer
import Foundation

@main
struct ExternalProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "external-provider",
        abstract: "Keeps people's API keys for AI providers and serves the PiecesOS ExternalProvider API.",
        subcommands: [Serve.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @Option(help: "Address to listen on. Env: EXTERNAL_PROVIDER_HOST. Default: \(ServeSettings.defaultHost).")
    var host: String?

    @Option(help: "Port to listen on. Env: EXTERNAL_PROVIDER_PORT. Default: \(ServeSettings.defaultPort), the SDKs' default.")
    var port: Int?

    @Option(help: "Where the store lives, created with mode 0700. Env: EXTERNAL_PROVIDER_DATA_DIR. Default: $XDG_DATA_HOME/external-provider, else ~/.local/share/external-provider.")
    var dataDir: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: EXTERNAL_PROVIDER_LOG_LEVEL. Default: info.")
    var logLevel: String?

    func run() async throws {
        let settings: ServeSettings
        do {
            settings = try ServeSettings(host: host, port: port, dataDirectory: dataDir, logLevel: logLevel)
        } catch {
            fail("\(error)")
        }
        do {
            let app = try await buildApplication(settings)
            try await app.runService()
        } catch {
            if let failure = error as? ServeFailure ?? ServeFailure.bind(error, host: settings.host, port: settings.port) {
                fail(failure.description)
            }
            fail("external-provider could not start: \(error)")
        }
    }

    private func fail(_ line: String) -> Never {
        FileHandle.standardError.write(Data("error: \(line)\n".utf8))
        Foundation.exit(1)
    }
}

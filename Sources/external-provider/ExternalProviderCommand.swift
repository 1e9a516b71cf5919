import ArgumentParser
import ExternalProviderServer
import Foundation

@main
struct ExternalProviderCommand: AsyncParsableCommand {
    static func main() async {
        // Every file this process makes (the store, its WAL, key files) is for its owner alone.
        umask(0o077)
        do {
            var command = try parseAsRoot()
            // Every command may open keys; only `serve --allow-core-dumps` lets a core file hold them.
            if (command as? Serve)?.allowCoreDumps != true { ProcessHardening.forbidCoreDumps() }
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "external-provider",
        abstract: "Keeps people's API keys for AI providers and serves the PiecesOS ExternalProvider API.",
        subcommands: [Serve.self, Apps.self, Keys.self, Audit.self, Key.self, Models.self, RotateMasterKey.self, Migrate.self]
    )
}

/// Where the store is and what opens it: shared by every command that touches the data dir.
struct StoreOptions: ParsableArguments {
    @Option(help: "Where the store lives, created with mode 0700. Env: EXTERNAL_PROVIDER_DATA_DIR. Default: $XDG_DATA_HOME/external-provider, else ~/.local/share/external-provider.")
    var dataDir: String?

    @Option(help: "File holding the master key (base64 of 32 bytes). Env: EXTERNAL_PROVIDER_MASTER_KEY_FILE, or the key itself in EXTERNAL_PROVIDER_MASTER_KEY. Default: <data-dir>/master.key, made on first start; with --database-url it must be given.")
    var masterKeyFile: String?

    @Option(help: "Keep keys in this PostgreSQL database (postgres://user:password@host:5432/db?sslmode=require), shared by several instances, instead of the data dir. Env: DATABASE_URL.")
    var databaseURL: String?

    func location(_ environment: [String: String]) throws -> StoreLocation {
        try StoreLocation.resolve(dataDirectory: dataDir, databaseURL: databaseURL, environment: environment)
    }
}

/// Prints `error: <line>` to stderr and exits 1: every failure a command reports is one line.
func fail(_ line: String) -> Never {
    exitWith(.failure, line)
}

import ArgumentParser
import ExternalProviderPostgres
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
    @Option(name: .customLong(Setting.dataDir.flag), help: ArgumentHelp(Setting.dataDir.help)) var dataDir: String?
    @Option(name: .customLong(Setting.masterKeyFile.flag), help: ArgumentHelp(Setting.masterKeyFile.help)) var masterKeyFile: String?
    @Option(name: .customLong(Setting.databaseURL.flag), help: ArgumentHelp(Setting.databaseURL.help)) var databaseURL: String?

    /// The flags given, for `Settings`.
    var flags: [Setting: String?] { [.dataDir: dataDir, .masterKeyFile: masterKeyFile, .databaseURL: databaseURL] }

    /// The store and its master key file, each from its flag, else its variable, else its default.
    func resolve(_ environment: [String: String]) throws -> (location: StoreLocation, masterKeyFile: String?) {
        if let databaseURL, (try? DatabaseURL(databaseURL))?.password != nil {
            FileHandle.standardError.write(Data(
                "warning: the password in --\(Setting.databaseURL.flag) shows in every process listing; give the URL in \(Setting.databaseURL.variable) instead\n".utf8))
        }
        let settings = Settings(flags: flags, environment: environment)
        return (try StoreLocation(settings), settings.text(.masterKeyFile))
    }
}

/// Prints `error: <line>` to stderr and exits 1: every failure a command reports is one line.
func fail(_ line: String) -> Never {
    exitWith(.failure, line)
}

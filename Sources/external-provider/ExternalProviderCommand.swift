import ArgumentParser
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import Foundation
import Logging

@main
struct ExternalProviderCommand: AsyncParsableCommand {
    static let version = "0.2.0"

    static func main() async {
        // Every file this process makes (the store, its WAL, key files) is for its owner alone.
        umask(0o077)
        do {
            var command = try parseAsRoot()
            // Every command may open keys; only `serve --allow-core-dumps` lets a core file hold them.
            if !((command as? any MayDumpCore)?.allowsCoreDumps ?? false) { ProcessHardening.forbidCoreDumps() }
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
        version: "external-provider \(version) (commit \(buildCommit))",
        subcommands: [Serve.self, Apps.self, Keys.self, Usage.self, Audit.self, Key.self, Models.self, RotateMasterKey.self, Migrate.self]
    )
}

/// A command that may leave core dumps on: `serve --allow-core-dumps` only.
protocol MayDumpCore {
    var allowsCoreDumps: Bool { get }
}

/// Where the store is and what opens it: shared by every command that touches the store.
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong(StoreSettings.dataDir.declaration.flag), help: ArgumentHelp(StoreSettings.dataDir.declaration.help))
    var dataDir: String?
    @Option(name: .customLong(StoreSettings.masterKeyFile.declaration.flag), help: ArgumentHelp(StoreSettings.masterKeyFile.declaration.help))
    var masterKeyFile: String?
    @Option(name: .customLong(StoreSettings.databaseURL.declaration.flag), help: ArgumentHelp(StoreSettings.databaseURL.declaration.help))
    var databaseURL: String?

    /// The store, each setting from its flag, else its variable, else its default.
    func location() throws -> StoreLocation {
        var given: [SettingDeclaration: [String]] = [:]
        given[StoreSettings.dataDir.declaration] = dataDir.map { [$0] }
        given[StoreSettings.masterKeyFile.declaration] = masterKeyFile.map { [$0] }
        given[StoreSettings.databaseURL.declaration] = databaseURL.map { [$0] }
        warnOfPasswordInFlag(databaseURL)
        return try StoreLocation(Settings(given: given))
    }
}

/// A database URL given as a flag, password and all, shows in every process listing.
func warnOfPasswordInFlag(_ databaseURL: String?) {
    guard let warning = StoreSettings.passwordInFlagWarning(databaseURL) else { return }
    FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
}

/// The commands' own log, for what a store says as it opens: warnings and worse.
let commandLogger: Logger = {
    var logger = Logger(label: "external-provider")
    logger.logLevel = .warning
    return logger
}()

/// Runs `body` with the store the options name, opened as `serve` opens it; any failure ends the command.
func withStore<Result: Sendable>(
    _ options: StoreOptions, _ body: @escaping @Sendable (any ServingStore) async throws -> Result
) async -> Result {
    do {
        return try await options.location().withStore(migrate: false, logger: commandLogger, body)
    } catch {
        fail("\(error)")
    }
}

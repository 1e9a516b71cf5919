import ArgumentParser
import ExternalProviderCore
import ExternalProviderServer
import ExternalProviderStore
import Foundation
import Logging

struct Apps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the applications allowed to call the API (the X-Application-ID header).",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an application and print its new id. The id is shown only this once.")

        @Argument(help: "1 to 64 letters, digits, '.', '_' or '-'.") var name: String

        @Option(name: .customLong("scope"), help: "keys (the three ExternalProvider operations) or relay (the OpenAI relay and the model list); repeatable. Default: relay for an application bound with --user, keys otherwise.")
        var scopes: [String] = []

        @Option(name: .customLong("user"), help: "Bind the application to this user: the relay uses this user's key, and no other.")
        var user: String?

        @OptionGroup var store: StoreOptions

        func run() async throws {
            var chosen = Set<ApplicationScope>()
            for name in scopes {
                guard let scope = ApplicationScope(rawValue: name) else {
                    fail("unknown scope '\(name)'; use keys or relay")
                }
                chosen.insert(scope)
            }
            if let user {
                do {
                    _ = try UserID(validating: user)
                } catch {
                    fail("--user: \(error.message)")
                }
            }
            let registry = try await openStore(store)
            do {
                print(try await registry.registerApplication(
                    named: name, scopes: chosen.isEmpty ? ApplicationScope.defaults(boundUser: user) : chosen, boundUser: user))
            } catch let error as ApplicationError {
                fail(error.description)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List applications: names, dates, scopes, bound user and status, never ids.")

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let applications = try await openStore(store).applications()
            let dates = ISO8601DateFormatter()
            func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
            print(column("NAME", 24) + column("CREATED", 22) + column("SCOPES", 12) + column("USER", 24) + "STATUS")
            for application in applications {
                let status = application.revokedAt.map { "revoked \(dates.string(from: $0))" } ?? "active"
                let scopes = application.scopes.sorted().map(\.rawValue).joined(separator: ",")
                print(column(application.name, 24) + column(dates.string(from: application.createdAt), 22) + column(scopes, 12)
                    + column(application.boundUser ?? "(any)", 24) + status)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an application: its id stops working within a second.")

        @Argument var name: String
        @OptionGroup var store: StoreOptions

        func run() async throws {
            guard try await openStore(store).revokeApplication(named: name) else {
                fail("there is no active application named '\(name)'")
            }
            print("revoked \(name)")
        }
    }
}

struct RotateMasterKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-master-key",
        abstract: "Re-seal every stored key under a new master key, in one transaction. Afterwards the old key is not needed."
    )

    @Option(help: "File holding the new master key (base64 of 32 bytes, e.g. from `openssl rand -base64 32`).")
    var newKeyFile: String

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let dataDirectory = DataDirectory(store.dataDir ?? environment["EXTERNAL_PROVIDER_DATA_DIR"] ?? ServeSettings.defaultDataDirectory(environment))
        let newKey: MasterKey
        do {
            newKey = try MasterKey(base64: String(contentsOfFile: newKeyFile, encoding: .utf8))
        } catch {
            fail("cannot use --new-key-file \(newKeyFile): \(error)")
        }
        do {
            let count = try await dataDirectory.rotateMasterKey(to: newKey, masterKeyFile: store.masterKeyFile, environment: environment, logger: commandLogger)
            print("re-sealed \(count) stored key(s) under master key \(newKey.id); the old master key is no longer needed")
            if store.masterKeyFile != nil || environment[MasterKeySource.environmentVariable] != nil {
                print("start serve with --master-key-file \(newKeyFile) (or its contents in \(MasterKeySource.environmentVariable)) from now on")
            }
        } catch {
            fail("\(error)")
        }
    }
}

private var commandLogger: Logger {
    var logger = Logger(label: "external-provider")
    logger.logLevel = .warning
    return logger
}

/// The store in the data dir the options name, opened as `serve` opens it; any failure ends the command.
func openStore(_ options: StoreOptions) async throws -> SQLiteKeyStore {
    let environment = ProcessInfo.processInfo.environment
    let dataDirectory = DataDirectory(options.dataDir ?? environment["EXTERNAL_PROVIDER_DATA_DIR"] ?? ServeSettings.defaultDataDirectory(environment))
    do {
        return try await dataDirectory.openStore(masterKeyFile: options.masterKeyFile, environment: environment, logger: commandLogger)
    } catch {
        fail("\(error)")
    }
}

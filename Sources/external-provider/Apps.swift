import ArgumentParser
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import Foundation
import Logging

struct Apps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the applications allowed to call the API (the X-Application-ID header).",
        subcommands: [Create.self, Update.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an application and print its new id. The id is shown only this once.",
            discussion: "An application is a virtual key: its limits (models, providers, expiry, requests a minute, tokens a day or month) hold on every relayed request, for every provider. None given: no limit.")

        @Argument(help: "1 to 64 letters, digits, '.', '_' or '-'.") var name: String

        @Option(name: CommandOption.scope.long, help: ArgumentHelp("keys (the key operations), relay (the relay and the model list) or admin (the usage ledger, GET /v1/usage); repeatable. Default: relay for an application bound with \(CommandOption.user.flag), keys otherwise."))
        var scopes: [String] = []

        @Option(name: CommandOption.user.long, help: "Bind the application to this user: it may use and change this user's keys, and no other's.")
        var user: String?

        @OptionGroup(title: "Limits") var limits: PolicyOptions

        @OptionGroup var store: StoreOptions

        func run() async throws {
            var chosen = Set<ApplicationScope>()
            for name in scopes {
                guard let scope = ApplicationScope(rawValue: name) else {
                    fail("unknown scope '\(name)'; use keys, relay or admin")
                }
                chosen.insert(scope)
            }
            if let user {
                do {
                    _ = try UserID(validating: user)
                } catch {
                    fail("\(CommandOption.user.flag): \(error.message)")
                }
            }
            let policy: ApplicationPolicy
            do {
                policy = try limits.applied(to: .unlimited)
            } catch {
                fail(error.message)
            }
            let (name, user, scopes) = (name, user, chosen.isEmpty ? ApplicationScope.defaults(boundUser: user) : chosen)
            let id = await withStore(store) { registry in
                do {
                    return try await registry.registerApplication(named: name, scopes: scopes, boundUser: user, policy: policy)
                } catch let error as ApplicationError {
                    fail(error.description)
                }
            }
            print(id)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change an application's limits; the ones not given stay as they are. Every instance applies the change within a second.")

        @Argument var name: String

        @OptionGroup(title: "Limits") var limits: PolicyOptions

        @Option(name: CommandOption.clear.long, help: ArgumentHelp("A limit to lift: \(PolicyLimitName.allCases.map(\.rawValue).joined(separator: ", ")); repeatable."))
        var cleared: [PolicyLimitName] = []

        @OptionGroup var store: StoreOptions

        func run() async throws {
            guard limits.givesAny || !cleared.isEmpty else { fail("give a limit to change, or \(CommandOption.clear.flag) one") }
            let now = Date()
            do {
                _ = try limits.applied(to: .unlimited, now: now)
            } catch {
                fail(error.message)
            }
            let (name, limits, cleared) = (name, limits, cleared)
            let updated = await withStore(store) { registry in
                try await registry.updateApplication(named: name) { policy in
                    // Checked above, with the same clock.
                    let given = (try? limits.applied(to: policy, now: now)) ?? policy
                    return cleared.reduce(given) { policy, limit in limit.lifted(from: policy) }
                }
            }
            guard let updated else { fail("there is no active application named '\(name)'") }
            print("\(name): \(updated.summary)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List applications: names, dates, scopes, bound user, status and limits, never ids.")

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let applications = await withStore(store) { try await $0.applications() }
            let dates = ISO8601DateFormatter()
            func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
            print(column("NAME", 24) + column("CREATED", 22) + column("SCOPES", 12) + column("USER", 24) + "STATUS")
            for application in applications {
                let status = application.revokedAt.map { "revoked \(dates.string(from: $0))" } ?? "active"
                let scopes = application.scopes.sorted().map(\.rawValue).joined(separator: ",")
                print(column(application.name, 24) + column(dates.string(from: application.createdAt), 22) + column(scopes, 12)
                    + column(application.boundUser ?? "(any)", 24) + status)
                if application.policy != .unlimited { print("    limits: \(application.policy.summary)") }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an application: its id stops working within a second.")

        @Argument var name: String
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let name = name
            guard await withStore(store, { try await $0.revokeApplication(named: name) }) else {
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
        let newKey: MasterKey
        do {
            newKey = try MasterKey(base64: String(contentsOfFile: newKeyFile, encoding: .utf8))
        } catch {
            fail("cannot use --new-key-file \(newKeyFile): \(error)")
        }
        do {
            let location = try store.location()
            let count = try await location.rotateMasterKey(to: newKey, logger: commandLogger)
            print("re-sealed \(count) stored key(s) under master key \(newKey.id); the old master key is no longer needed")
            if location.masterKeyIsGiven {
                print("start serve with \(StoreSettings.masterKeyFile.declaration.option) \(newKeyFile) (or its contents in \(MasterKeySource.environmentVariable)) from now on")
            }
        } catch {
            fail("\(error)")
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the store to this version's data version: PostgreSQL's migrations under an advisory lock (`serve` does this itself unless given --no-migrate), or the data dir's SQLite store, which migrates when opened.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        do {
            let location = try store.location()
            let applied = try await location.migrate(logger: commandLogger)
            switch location.place {
            case .postgres:
                print(applied.isEmpty ? "the database is up to date (data version \(DataVersion.current))"
                    : "applied migration(s) \(applied.map(String.init).joined(separator: ", ")); the database is at data version \(DataVersion.current)")
            case .dataDirectory:
                print("the data dir's store is at data version \(DataVersion.current)")
            }
        } catch {
            fail("\(error)")
        }
    }
}

import ArgumentParser
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import Foundation

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See the stored keys, masked, and what OpenAI last said of each; delete a user's key.",
        subcommands: [List.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List stored keys: user, provider, masked key, name, organization, health and last check.")

        @Flag(help: "One JSON array instead of a table.") var json = false

        @Option(help: "Only keys of this health: valid, rejected or unverified.") var health: String?

        @OptionGroup var store: StoreOptions

        func run() async throws {
            if let health, KeyHealth.Word(rawValue: health) == nil {
                fail("unknown health '\(health)'; use \(KeyHealth.Word.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let health = health
            let keys = await withStore(store) { try await $0.storedKeys() }.filter { health == nil || $0.health.name == health }
            let dates = ISO8601DateFormatter()
            if json {
                let rows: [[String: Any]] = keys.map { key in
                    var row: [String: Any] = [
                        "user": key.user.rawValue, "global_id": key.globalID.uuidString.lowercased(), "provider": key.provider.name,
                        "api_key": key.maskedKey, "created": dates.string(from: key.createdAt), "updated": dates.string(from: key.updatedAt),
                        "health": key.health.name,
                    ]
                    row["api_key_name"] = key.name
                    row["organization_key"] = key.organization
                    row["last_check"] = key.health.checkedAt.map(dates.string)
                    if case .rejected(_, let code) = key.health { row["error_code"] = code }
                    return row
                }
                try Printing.json(rows)
                return
            }
            Printing.row([("USER", 24), ("PROVIDER", 10), ("KEY", 12), ("NAME", 14), ("ORGANIZATION", 16), ("HEALTH", 26)], last: "LAST CHECK")
            for key in keys {
                var health = key.health.name
                if case .rejected(_, let code) = key.health { health += " (\(code))" }
                Printing.row(
                    [
                        (key.user.rawValue, 24), (key.provider.name, 10), (key.maskedKey, 12), (key.name ?? "", 14), (key.organization ?? "", 16),
                        (health, 26),
                    ], last: key.health.checkedAt.map(dates.string) ?? "never")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a user's key, as the API's delete does, and record it in the audit trail.")

        @Argument(help: "The user whose key to delete.") var user: String

        @Option(name: CommandOption.provider.long, help: ArgumentHelp("The provider whose key to delete: \(Provider.names). Default: every provider.")) var provider: String?

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let user: UserID
            do {
                user = try UserID(validating: self.user)
            } catch {
                fail("USER: \(error.message)")
            }
            var providers = Set(Provider.allCases)
            if let provider {
                guard let chosen = Provider(name: provider.lowercased()) else { fail("\(CommandOption.provider.flag): unknown provider '\(provider)'; use one of \(Provider.names)") }
                providers = [chosen]
            }
            let (before, after) = await withStore(store) { [providers] store in
                let before = try await store.account(for: user)
                do {
                    return (before, try await KeyService(store: store, verifier: nil).perform(.delete(providers), for: user, origin: .commandLine))
                } catch KeyWriteRejection.conflict(let conflict) {
                    fail(conflict.message)
                }
            }
            let deleted = providers.filter { after.keys[$0] == nil && before?.keys[$0] != nil }.map(\.displayName).sorted()
            print(deleted.isEmpty ? "user '\(user)' had no such key: nothing deleted" : "deleted the \(deleted.joined(separator: ", ")) key of user '\(user)'")
        }
    }
}

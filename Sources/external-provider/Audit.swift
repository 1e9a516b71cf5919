import ArgumentParser
import ExternalProviderCore
import ExternalProviderSetup
import Foundation

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the audit trail: every accepted change, who made it and when. Field names only, never a value.")

    @Option(name: CommandOption.user.long, help: "Only changes to this user.") var user: String?

    @Option(name: CommandOption.since.long, help: "Only changes at or after this time: 2026-11-30, or 2026-11-30T10:00:00Z.") var since: String?

    @Flag(help: "One JSON array instead of a table.") var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        var query = AuditQuery()
        if let user {
            do {
                query.user = try UserID(validating: user)
            } catch {
                fail("\(CommandOption.user.flag): \(error.message)")
            }
        }
        if let since {
            guard let date = TimeText.date(since) else { fail("\(CommandOption.since.flag): '\(since)' is not a date (2026-11-30) or a time (2026-11-30T10:00:00Z)") }
            query.since = date
        }
        let entries = await withStore(store) { [query] in try await $0.auditTrail(query) }
        let times = ISO8601DateFormatter()
        times.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if json {
            let rows: [[String: Any]] = entries.map { entry in
                var row: [String: Any] = [
                    "at": times.string(from: entry.at), "action": entry.action.rawValue, "fields": entry.fields.map(\.rawValue),
                    "providers": entry.providers.map(\.name),
                ]
                row["user"] = entry.user?.rawValue
                row["application"] = entry.application
                row["request_id"] = entry.requestID
                row["verification"] = entry.verification
                return row
            }
            try Printing.json(rows)
            return
        }
        Printing.row(
            [("TIME", 25), ("ACTION", 18), ("USER", 24), ("PROVIDERS", 12), ("FIELDS", 30), ("APPLICATION", 16), ("VERIFICATION", 13)], last: "REQUEST")
        for entry in entries {
            Printing.row(
                [
                    (times.string(from: entry.at), 25), (entry.action.rawValue, 18), (entry.user?.rawValue ?? "-", 24),
                    (entry.providers.isEmpty ? "-" : entry.providers.map(\.name).joined(separator: ","), 12),
                    (entry.fields.isEmpty ? "-" : AuditField.stored(entry.fields), 30), (entry.application ?? "(command line)", 16),
                    (entry.verification ?? "-", 13),
                ], last: entry.requestID ?? "-")
        }
    }
}

import ArgumentParser
import ExternalProviderCore
import Foundation

struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What the relay's applications spent, from the usage ledger: requests, errors and tokens per day, model, application, user or provider.")

    @Option(name: CommandOption.application.long, help: "Only this application's requests.") var application: String?
    @Option(name: CommandOption.user.long, help: "Only requests that used this user's keys.") var user: String?
    @Option(name: CommandOption.since.long, help: "Only requests that ended at or after this: 2026-12-01, 2026-12-01T12:00:00Z, or 7d, 12h back.")
    var since: String?
    @Option(name: CommandOption.groupedBy.long, help: ArgumentHelp("Group by \(UsageQuery.Grouping.allCases.map(\.rawValue).joined(separator: ", ")).")) var by = "day"
    @Flag(help: "One JSON object, as GET /v1/usage answers.") var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let query: UsageQuery
        do {
            query = try UsageQuery(application: application, user: user, since: since, by: by)
        } catch {
            exitWith(.badInput, error.message)
        }
        let groups = await withStore(store) { try await $0.usage(query) }
        if json {
            let report: [String: Any] = [
                "by": query.by.rawValue,
                "groups": groups.map { group in
                    [
                        "key": group.key, "requests": group.requests, "errors": group.errors, "input_tokens": group.inputTokens,
                        "output_tokens": group.outputTokens, "cached_tokens": group.cachedTokens,
                    ] as [String: Any]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        Printing.row(
            [(query.by.rawValue.uppercased(), 28), ("REQUESTS", 10), ("ERRORS", 8), ("INPUT", 14), ("OUTPUT", 14)], last: "CACHED")
        for group in groups {
            Printing.row(
                [
                    (group.key.isEmpty ? "(none)" : group.key, 28), (String(group.requests), 10), (String(group.errors), 8),
                    (String(group.inputTokens), 14), (String(group.outputTokens), 14),
                ], last: String(group.cachedTokens))
        }
    }
}

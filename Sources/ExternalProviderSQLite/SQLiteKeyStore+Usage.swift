import ExternalProviderCore
import ExternalProviderStore
import Foundation
import GRDB

/// The usage ledger in the embedded store: one `usage_event` row per relayed request. Batches share the
/// group commit with key writes, so a batch costs no fsync of its own when writes are under way.
extension SQLiteKeyStore: UsageLedger {
    /// The tables, data version 6: the entries, indexed by time for reports and retention, and the running
    /// totals budgets read.
    static let usageMigration = [
        """
        CREATE TABLE usage_event (
            id INTEGER PRIMARY KEY,
            entry_id BLOB NOT NULL UNIQUE,
            at DATETIME NOT NULL,
            application TEXT NOT NULL,
            user TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT,
            status INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            request_id TEXT NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_tokens INTEGER)
        """,
        "CREATE INDEX usage_event_at ON usage_event (at)",
        // Running totals per application, user and UTC day (`LedgerDay`), added to in the same transaction
        // as the entries: a budget's check reads at most a month of rows, whatever the ledger holds.
        """
        CREATE TABLE usage_total (
            application TEXT NOT NULL,
            user TEXT NOT NULL,
            day INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            PRIMARY KEY (application, user, day))
        """,
    ]

    public func appendUsage(_ entries: [UsageEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await groupCommit.write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO usage_event (entry_id, at, application, user, provider, model, status, duration_ms, request_id,
                    input_tokens, output_tokens, cached_tokens)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            var totals = LedgerTotals()
            for entry in entries {
                try insert.execute(arguments: [
                    entry.id, entry.at, entry.application, entry.user.rawValue, entry.provider.rawValue, entry.model, entry.status,
                    entry.durationMilliseconds, entry.requestID, entry.tokens.input, entry.tokens.output, entry.tokens.cached,
                ])
                // An entry already there (a batch sent again) was counted when it was written.
                if db.changesCount == 1 { totals.add(entry) }
            }
            let add = try db.cachedStatement(sql: """
                INSERT INTO usage_total (application, user, day, tokens) VALUES (?, ?, ?, ?)
                ON CONFLICT (application, user, day) DO UPDATE SET tokens = tokens + excluded.tokens
                """)
            for total in totals.sorted {
                try add.execute(arguments: [total.application, total.user, total.day, total.tokens])
            }
        }
    }

    public func tokensSpent(application: String, user: UserID, since: [Date]) async throws -> [Int] {
        guard let earliest = since.min() else { return [] }
        let sums = since.map { _ in "COALESCE(SUM(CASE WHEN day >= ? THEN tokens END), 0)" }
        return try await writer.read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT \(sums.joined(separator: ", ")) FROM usage_total WHERE application = ? AND user = ? AND day >= ?
                """)
            let arguments = StatementArguments(since.map(LedgerDay.of)) + [application, user.rawValue, LedgerDay.of(earliest)]
            guard let row = try Row.fetchOne(statement, arguments: arguments) else { return since.map { _ in 0 } }
            return since.indices.map { row[$0] }
        }
    }

    public func usage(_ query: UsageQuery) async throws -> [UsageGroup] {
        let key: String =
            switch query.by {
            case .day: "substr(at, 1, 10)"
            case .model: "COALESCE(model, '')"
            case .app: "application"
            case .user: "user"
            case .provider: "provider"
            }
        var filter = SQLiteFilter()
        filter.add("application = ?", query.application)
        filter.add("user = ?", query.user?.rawValue)
        filter.add("at >= ?", query.since)
        return try await writer.read { [filter] db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(key), COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), COALESCE(SUM(input_tokens), 0),
                        COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cached_tokens), 0)
                    FROM usage_event \(filter.clause) GROUP BY 1 ORDER BY 1
                    """, arguments: filter.arguments
            ).map { row in
                UsageGroup(key: row[0], requests: row[1], errors: row[2], inputTokens: row[3], outputTokens: row[4], cachedTokens: row[5])
            }
        }
    }

    /// In slices, each its own transaction, so that removing a day of a busy ledger never holds the
    /// writer for long.
    public func removeUsage(before cutoff: Date) async throws -> Int {
        // Totals are kept a month longer than entries, so that a month's budget never loses a day.
        try await writer.write { db in
            try db.execute(sql: "DELETE FROM usage_total WHERE day < ?", arguments: [LedgerDay.of(cutoff) - 31])
        }
        var removed = 0
        while true {
            let count = try await writer.write { db in
                try db.execute(
                    sql: "DELETE FROM usage_event WHERE id IN (SELECT id FROM usage_event WHERE at < ? LIMIT 5000)", arguments: [cutoff])
                return db.changesCount
            }
            removed += count
            if count < 5000 { return removed }
        }
    }
}

import ExternalProviderCore
import ExternalProviderStore
import Foundation
import PostgresNIO

/// The usage ledger in PostgreSQL, shared by every instance: a budget counts what all of them recorded.
extension PostgresKeyStore: UsageLedger {
    /// Data version 6: the application's limits, the ledger's entries (indexed by time for reports and
    /// retention) and the running totals budgets read.
    static let policyAndUsageMigration = [
        "ALTER TABLE application ADD COLUMN models TEXT",
        "ALTER TABLE application ADD COLUMN providers TEXT",
        "ALTER TABLE application ADD COLUMN expires_at TIMESTAMPTZ",
        "ALTER TABLE application ADD COLUMN rpm BIGINT",
        "ALTER TABLE application ADD COLUMN tokens_per_day BIGINT",
        "ALTER TABLE application ADD COLUMN tokens_per_month BIGINT",
        """
        CREATE TABLE usage_event (
            entry_id UUID PRIMARY KEY,
            at TIMESTAMPTZ NOT NULL,
            application TEXT NOT NULL,
            user_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT,
            status INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            request_id TEXT NOT NULL,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_tokens BIGINT)
        """,
        "CREATE INDEX usage_event_at ON usage_event (at)",
        // Running totals per application, user and UTC day (`LedgerDay`), added to in the same transaction
        // as the entries: a budget's check reads at most a month of rows, whatever the ledger holds.
        """
        CREATE TABLE usage_total (
            application TEXT NOT NULL,
            user_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            tokens BIGINT NOT NULL,
            PRIMARY KEY (application, user_id, day))
        """,
    ]

    /// Rows per INSERT: 12 parameters each, well under PostgreSQL's 65,535.
    static let usageRowsPerStatement = 500

    public func appendUsage(_ entries: [UsageEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await transaction { [logger] connection in
            var totals = LedgerTotals()
            let byID = Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for start in stride(from: 0, to: entries.count, by: Self.usageRowsPerStatement) {
                let slice = entries[start..<min(entries.count, start + Self.usageRowsPerStatement)]
                // Only the entries written now count: one already there (a batch sent again after a write
                // whose outcome was not known) was counted when it was written.
                for try await inserted in try await connection.query(try Self.insert(slice), logger: logger).decode(UUID.self) {
                    if let entry = byID[inserted] { totals.add(entry) }
                }
            }
            let sorted = totals.sorted
            guard !sorted.isEmpty else { return }
            var bindings = PostgresBindings(capacity: sorted.count * 4)
            var rows: [String] = []
            for total in sorted {
                let first = bindings.count + 1
                rows.append("($\(first), $\(first + 1), $\(first + 2), $\(first + 3))")
                bindings.append(total.application)
                bindings.append(total.user)
                bindings.append(total.day)
                bindings.append(total.tokens)
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO usage_total (application, user_id, day, tokens) VALUES \(rows.joined(separator: ", "))
                        ON CONFLICT (application, user_id, day) DO UPDATE SET tokens = usage_total.tokens + EXCLUDED.tokens
                        """, binds: bindings), logger: logger)
        }
    }

    private static func insert(_ entries: ArraySlice<UsageEntry>) throws -> PostgresQuery {
        var bindings = PostgresBindings(capacity: entries.count * 12)
        var rows: [String] = []
        for entry in entries {
            let first = bindings.count + 1
            rows.append("(" + (first..<(first + 12)).map { "$\($0)" }.joined(separator: ", ") + ")")
            bindings.append(entry.id)
            bindings.append(entry.at)
            bindings.append(entry.application)
            bindings.append(entry.user.rawValue)
            bindings.append(entry.provider.rawValue)
            bindings.append(entry.model)
            bindings.append(entry.status)
            bindings.append(entry.durationMilliseconds)
            bindings.append(entry.requestID)
            bindings.append(entry.tokens.input)
            bindings.append(entry.tokens.output)
            bindings.append(entry.tokens.cached)
        }
        return PostgresQuery(
            unsafeSQL: """
                INSERT INTO usage_event (entry_id, at, application, user_id, provider, model, status, duration_ms, request_id,
                    input_tokens, output_tokens, cached_tokens)
                VALUES \(rows.joined(separator: ", ")) ON CONFLICT (entry_id) DO NOTHING RETURNING entry_id
                """, binds: bindings)
    }

    public func tokensSpent(application: String, user: UserID, since: [Date]) async throws -> [Int] {
        guard let earliest = since.min() else { return [] }
        return try await availability.classifying { [client, logger] in
            var bindings = PostgresBindings(capacity: since.count + 3)
            let sums = since.map { date in
                bindings.append(LedgerDay.of(date))
                return "COALESCE(SUM(CASE WHEN day >= $\(bindings.count) THEN tokens END), 0)::BIGINT"
            }
            bindings.append(application)
            bindings.append(user.rawValue)
            bindings.append(LedgerDay.of(earliest))
            let count = bindings.count
            let query = PostgresQuery(
                unsafeSQL: """
                    SELECT \(sums.joined(separator: ", ")) FROM usage_total
                    WHERE application = $\(count - 2) AND user_id = $\(count - 1) AND day >= $\(count)
                    """, binds: bindings)
            var totals = since.map { _ in 0 }
            for try await row in try await client.query(query, logger: logger) {
                totals = try Array(row).map { try $0.decode(Int.self) }
            }
            return totals
        }
    }

    public func usage(_ query: UsageQuery) async throws -> [UsageGroup] {
        let key: String =
            switch query.by {
            case .day: "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            case .model: "COALESCE(model, '')"
            case .app: "application"
            case .user: "user_id"
            case .provider: "provider"
            }
        // Each filter applies only when given, as the audit trail's do.
        let sql: PostgresQuery = """
            SELECT \(unescaped: key), COUNT(*)::BIGINT, COUNT(*) FILTER (WHERE status >= 400)::BIGINT, COALESCE(SUM(input_tokens), 0)::BIGINT,
                COALESCE(SUM(output_tokens), 0)::BIGINT, COALESCE(SUM(cached_tokens), 0)::BIGINT
            FROM usage_event
            WHERE (\(query.application)::text IS NULL OR application = \(query.application)::text)
                AND (\(query.user?.rawValue)::text IS NULL OR user_id = \(query.user?.rawValue)::text)
                AND (\(query.since)::timestamptz IS NULL OR at >= \(query.since)::timestamptz)
            GROUP BY 1 ORDER BY 1
            """
        return try await availability.classifying { [client, logger] in
            var groups: [UsageGroup] = []
            for try await (key, requests, errors, input, output, cached) in try await client.query(sql, logger: logger).decode(
                (String, Int, Int, Int, Int, Int).self)
            {
                groups.append(UsageGroup(key: key, requests: requests, errors: errors, inputTokens: input, outputTokens: output, cachedTokens: cached))
            }
            return groups
        }
    }

    /// In slices, so that no one statement holds locks on a busy ledger for long.
    public func removeUsage(before cutoff: Date) async throws -> Int {
        // Totals are kept a month longer than entries, so that a month's budget never loses a day.
        try await availability.classifying { [client, logger] in
            try await client.query("DELETE FROM usage_total WHERE day < \(LedgerDay.of(cutoff) - 31)", logger: logger)
        }
        var removed = 0
        while true {
            let count = try await availability.classifying { [client, logger] in
                let rows = try await client.query(
                    """
                    WITH gone AS (DELETE FROM usage_event WHERE entry_id IN (SELECT entry_id FROM usage_event WHERE at < \(cutoff) LIMIT 5000) RETURNING 1)
                    SELECT COUNT(*)::BIGINT FROM gone
                    """, logger: logger)
                return try await rows.decode(Int.self).first { _ in true } ?? 0
            }
            removed += count
            if count < 5000 { return removed }
        }
    }
}

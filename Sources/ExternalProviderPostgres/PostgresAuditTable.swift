import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

/// The audit trail's table on PostgreSQL, the same columns as the embedded store's. A trigger refuses
/// UPDATE, DELETE and TRUNCATE, so the product (or a slip in a later version of it) can only append.
enum PostgresAuditTable {
    static let migration = [
        """
        CREATE TABLE audit_event (
            id BIGSERIAL PRIMARY KEY,
            at TIMESTAMPTZ NOT NULL,
            action TEXT NOT NULL,
            user_id TEXT,
            fields TEXT NOT NULL,
            application TEXT,
            request_id TEXT,
            verification TEXT)
        """,
        "CREATE INDEX audit_event_user ON audit_event (user_id, id)",
        """
        CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$
        """,
        """
        CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
        FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
        """,
        """
        CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
        """,
    ]

    /// Appends `entry` inside the caller's transaction, so it commits with the change it records or not at all.
    static func append(_ entry: AuditEntry, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO audit_event (at, action, user_id, fields, providers, application, request_id, verification)
            VALUES (\(entry.at), \(entry.action.rawValue), \(entry.user?.rawValue), \(AuditField.stored(entry.fields)),
                \(AuditEntry.stored(entry.providers)), \(entry.application), \(entry.requestID), \(entry.verification))
            """, logger: logger)
    }

    static func entries(_ query: AuditQuery, on client: PostgresClient, logger: Logger) async throws -> [AuditEntry] {
        // A missing filter is a NULL that matches every row.
        let rows = try await client.query(
            """
            SELECT at, action, user_id, fields, providers, application, request_id, verification FROM audit_event
            WHERE (\(query.user?.rawValue)::text IS NULL OR user_id = \(query.user?.rawValue)::text)
                AND (\(query.since)::timestamptz IS NULL OR at >= \(query.since)::timestamptz)
            ORDER BY id
            """, logger: logger)
        var entries: [AuditEntry] = []
        for try await (at, action, user, fields, providers, application, requestID, verification) in rows.decode(
            (Date, String, String?, String, String?, String?, String?, String?).self)
        {
            guard let known = AuditAction(rawValue: action) else { throw Fault(.store, "audit_event row has an unknown action '\(action)'") }
            entries.append(AuditEntry(
                at: at, action: known, user: user.map(UserID.init(trusted:)), fields: AuditField.parse(stored: fields),
                providers: AuditEntry.providers(stored: providers),
                application: application, requestID: requestID, verification: verification))
        }
        return entries
    }
}

extension PostgresKeyStore {
    public func auditTrail(_ query: AuditQuery) async throws -> [AuditEntry] {
        try await availability.classifying { [client, logger] in try await PostgresAuditTable.entries(query, on: client, logger: logger) }
    }

    public func keyCounts() async throws -> [KeyCount: Int] {
        try await availability.classifying { [client, logger] in
            var counts: [KeyCount: Int] = [:]
            for try await (name, word, count) in try await client.query(
                "SELECT provider, health, count(*) FROM provider_key GROUP BY provider, health", logger: logger
            ).decode((String, String, Int).self) {
                guard let provider = Provider(rawValue: name), let health = KeyHealth.Word(rawValue: word) else { continue }
                counts[KeyCount(provider: provider, health: health)] = count
            }
            return counts
        }
    }
}

import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

/// The audit trail's table, its columns written out here since they are on disk. Triggers refuse any
/// UPDATE or DELETE of its rows, so no code path of the product, nor a slip in a later one, can edit it.
enum SQLiteAuditTable {
    static let migration = [
        """
        CREATE TABLE audit_event (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at DATETIME NOT NULL,
            action TEXT NOT NULL,
            user TEXT,
            fields TEXT NOT NULL,
            application TEXT,
            request_id TEXT,
            verification TEXT)
        """,
        "CREATE INDEX audit_event_user ON audit_event (user, id)",
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
        "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ]

    /// Appends `entry` inside the caller's transaction, so it commits with the change it records or not at all.
    static func append(_ entry: AuditEntry, in db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit_event (at, action, user, fields, providers, application, request_id, verification) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
            .execute(arguments: [
                entry.at, entry.action.rawValue, entry.user?.rawValue, AuditField.stored(entry.fields), AuditEntry.stored(entry.providers),
                entry.application, entry.requestID, entry.verification,
            ])
    }

    static func entries(_ query: AuditQuery, in db: Database) throws -> [AuditEntry] {
        var filter = SQLiteFilter()
        filter.add("user = ?", query.user?.rawValue)
        filter.add("at >= ?", query.since)
        return try Row.fetchAll(
            db, sql: "SELECT at, action, user, fields, providers, application, request_id, verification FROM audit_event \(filter.clause) ORDER BY id",
            arguments: filter.arguments
        ).map { row in
            let action: String = row["action"]
            guard let known = AuditAction(rawValue: action) else { throw Fault(.store, "audit_event row has an unknown action '\(action)'") }
            return AuditEntry(
                at: row["at"], action: known, user: (row["user"] as String?).map(UserID.init(trusted:)),
                fields: AuditField.parse(stored: row["fields"]), providers: AuditEntry.providers(stored: row["providers"]),
                application: row["application"], requestID: row["request_id"],
                verification: row["verification"])
        }
    }
}

extension SQLiteKeyStore {
    public func auditTrail(_ query: AuditQuery) async throws -> [AuditEntry] {
        try await writer.read { db in try SQLiteAuditTable.entries(query, in: db) }
    }

    public func keyCounts() async throws -> [KeyCount: Int] {
        try await writer.read { db in
            var counts: [KeyCount: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT provider, health, count(*) AS n FROM provider_key GROUP BY provider, health") {
                guard let provider = Provider(rawValue: row["provider"]), let health = KeyHealth.Word(rawValue: row["health"]) else { continue }
                counts[KeyCount(provider: provider, health: health)] = row["n"]
            }
            return counts
        }
    }
}

import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

extension SQLiteKeyStore {
    public func recordHealth(_ health: KeyHealth, of credentials: ProviderCredentials, for user: UserID) async throws -> Bool {
        let columns = KeyHealthColumns(health)
        return try await updateIfStillStored(credentials, of: user) { db in
            try db.cachedStatement(sql: """
                UPDATE provider_key SET health = ?, health_checked_at = ?, health_code = ?, recheck_after = NULL WHERE user = ? AND provider = ?
                """)
                .execute(arguments: [columns.word, columns.checkedAt, columns.code, user.rawValue, credentials.provider.rawValue])
        }
    }

    public func deferCheck(of credentials: ProviderCredentials, for user: UserID, until: Date) async throws -> Bool {
        try await updateIfStillStored(credentials, of: user) { db in
            try db.cachedStatement(sql: "UPDATE provider_key SET recheck_after = ? WHERE user = ? AND provider = ?")
                .execute(arguments: [until, user.rawValue, credentials.provider.rawValue])
        }
    }

    /// Runs `update` only if `credentials` are still the user's stored pair: the key may have been
    /// replaced since it was used, and what the provider said is not about the new one.
    private func updateIfStillStored(
        _ credentials: ProviderCredentials, of user: UserID, _ update: @escaping @Sendable (Database) throws -> Void
    ) async throws -> Bool {
        try await groupCommit.write { [codec] db in
            let record = try ProviderKeyRecord.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM provider_key WHERE user = ? AND provider = ?"),
                arguments: [user.rawValue, credentials.provider.rawValue])
            guard let record, ProviderCredentials(credentials.provider, try record.key(openedWith: codec)) == credentials else {
                return false
            }
            try update(db)
            return true
        }
    }

    public func storedKeys(of user: UserID?) async throws -> [StoredKeySummary] {
        try await writer.read { [codec] db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT k.*, a.global_id FROM provider_key k JOIN user_account a ON a.user = k.user
                WHERE ? IS NULL OR k.user = ? ORDER BY k.user, k.provider
                """, arguments: [user?.rawValue, user?.rawValue])
            return try rows.compactMap { row in
                let record = try ProviderKeyRecord(row: row)
                guard let provider = Provider(rawValue: record.provider), let globalID = UUID(uuidString: row["global_id"]) else { return nil }
                let key = try record.key(openedWith: codec)
                return StoredKeySummary(
                    user: UserID(trusted: record.user), globalID: globalID, provider: provider, maskedKey: provider.profile.mask.apply(to: key.apiKey),
                    name: key.apiKeyName, organization: key.organizationKey, createdAt: record.createdAt, updatedAt: record.updatedAt,
                    health: try KeyHealthColumns.health(word: row["health"], checkedAt: row["health_checked_at"], code: row["health_code"]))
            }
        }
    }

    public func keysDueForCheck(
        of provider: Provider, checkedBefore cutoff: Date, at now: Date, limit: Int
    ) async throws -> [(UserID, ProviderCredentials)] {
        try await writer.read { [codec] db in
            let records = try ProviderKeyRecord.fetchAll(db, sql: """
                SELECT * FROM provider_key
                WHERE provider = ? AND (health_checked_at IS NULL OR health_checked_at < ?) AND (recheck_after IS NULL OR recheck_after <= ?)
                ORDER BY health_checked_at IS NOT NULL, health_checked_at LIMIT ?
                """, arguments: [provider.rawValue, cutoff, now, limit])
            return try records.compactMap { record in
                guard let provider = Provider(rawValue: record.provider) else { return nil }
                return (UserID(trusted: record.user), ProviderCredentials(provider, try record.key(openedWith: codec)))
            }
        }
    }
}

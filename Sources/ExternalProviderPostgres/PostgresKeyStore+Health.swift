import ExternalProviderCore
import ExternalProviderStore
import Foundation
import PostgresNIO

extension PostgresKeyStore {
    public func recordHealth(_ health: KeyHealth, of credentials: ProviderCredentials, for user: UserID) async throws -> Bool {
        let columns = KeyHealthColumns(health)
        let provider = credentials.provider.rawValue
        return try await updateIfStillStored(credentials, of: user) { [logger] connection in
            try await connection.query(
                """
                UPDATE provider_key SET health = \(columns.word), health_checked_at = \(columns.checkedAt), health_code = \(columns.code),
                    recheck_after = NULL
                WHERE user_id = \(user.rawValue) AND provider = \(provider)
                """, logger: logger)
        }
    }

    public func deferCheck(of credentials: ProviderCredentials, for user: UserID, until: Date) async throws -> Bool {
        let provider = credentials.provider.rawValue
        return try await updateIfStillStored(credentials, of: user) { [logger] connection in
            try await connection.query(
                "UPDATE provider_key SET recheck_after = \(until) WHERE user_id = \(user.rawValue) AND provider = \(provider)", logger: logger)
        }
    }

    /// Runs `update` only if `credentials` are still the user's stored pair, with the row locked: the key
    /// may have been replaced since it was used, and what the provider said is not about the new one.
    private func updateIfStillStored(
        _ credentials: ProviderCredentials, of user: UserID, _ update: @escaping @Sendable (PostgresConnection) async throws -> Void
    ) async throws -> Bool {
        try await transaction { [self] connection in
            let provider = credentials.provider.rawValue
            let rows = try await connection.query(
                """
                SELECT api_key, api_key_name, organization_key FROM provider_key
                WHERE user_id = \(user.rawValue) AND provider = \(provider) FOR UPDATE
                """, logger: logger)
            var stored: ProviderKey?
            for try await (apiKey, name, organization) in rows.decode((Data, String?, Data?).self) {
                stored = try codec.open(.init(apiKey: apiKey, organizationKey: organization), name: name, user: user.rawValue, provider: provider)
            }
            guard let stored, ProviderCredentials(credentials.provider, stored) == credentials else { return false }
            try await update(connection)
            return true
        }
    }

    public func storedKeys(of user: UserID?) async throws -> [StoredKeySummary] {
        try await availability.classifying { [self] in
            try await client.withConnection { connection in
                let rows = try await connection.query(
                    """
                    SELECT k.user_id, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key, k.created_at, k.updated_at,
                        k.health, k.health_checked_at, k.health_code
                    FROM provider_key k JOIN user_account a ON a.user_id = k.user_id
                    WHERE \(user?.rawValue)::text IS NULL OR k.user_id = \(user?.rawValue)::text
                    ORDER BY k.user_id, k.provider
                    """, logger: logger)
                var keys: [StoredKeySummary] = []
                for try await (user, globalID, name, apiKey, apiKeyName, organization, createdAt, updatedAt, health, checkedAt, code) in rows.decode(
                    (String, UUID, String, Data, String?, Data?, Date, Date, String, Date?, String?).self)
                {
                    guard let provider = Provider(rawValue: name) else { continue }
                    let key = try codec.open(.init(apiKey: apiKey, organizationKey: organization), name: apiKeyName, user: user, provider: name)
                    keys.append(StoredKeySummary(
                        user: UserID(trusted: user), globalID: globalID, provider: provider, maskedKey: provider.profile.mask.apply(to: key.apiKey),
                        name: key.apiKeyName, organization: key.organizationKey, createdAt: createdAt, updatedAt: updatedAt,
                        health: try KeyHealthColumns.health(word: health, checkedAt: checkedAt, code: code)))
                }
                return keys
            }
        }
    }

    public func keysDueForCheck(
        of provider: Provider, checkedBefore cutoff: Date, at now: Date, limit: Int
    ) async throws -> [(UserID, ProviderCredentials)] {
        try await availability.classifying { [self] in
            try await client.withConnection { connection in
                let rows = try await connection.query(
                    """
                    SELECT user_id, provider, api_key, api_key_name, organization_key FROM provider_key
                    WHERE provider = \(provider.rawValue) AND (health_checked_at IS NULL OR health_checked_at < \(cutoff))
                        AND (recheck_after IS NULL OR recheck_after <= \(now))
                    ORDER BY health_checked_at NULLS FIRST LIMIT \(limit)
                    """, logger: logger)
                var due: [(UserID, ProviderCredentials)] = []
                for try await (user, name, apiKey, apiKeyName, organization) in rows.decode((String, String, Data, String?, Data?).self) {
                    guard let provider = Provider(rawValue: name) else { continue }
                    let key = try codec.open(.init(apiKey: apiKey, organizationKey: organization), name: apiKeyName, user: user, provider: name)
                    due.append((UserID(trusted: user), ProviderCredentials(provider, key)))
                }
                return due
            }
        }
    }

    /// Re-seals every stored value under `newKey` in one transaction and records the new key's id. Every
    /// instance still holding the old key refuses writes from then on; restart them with the new key.
    public func rotateMasterKey(to newKey: MasterKey) async throws -> Int {
        try await transaction { [self] connection in
            try await connection.query("LOCK TABLE provider_key IN EXCLUSIVE MODE", logger: logger)
            try await claim(connection, insertIfMissing: false)
            let next = SealedKeyCodec(masterKey: newKey)
            var resealed: [(String, String, SealedKeyCodec.Sealed)] = []
            let rows = try await connection.query("SELECT user_id, provider, api_key, api_key_name, organization_key FROM provider_key", logger: logger)
            for try await (user, provider, apiKey, apiKeyName, organization) in rows.decode((String, String, Data, String?, Data?).self) {
                let key = try codec.open(.init(apiKey: apiKey, organizationKey: organization), name: apiKeyName, user: user, provider: provider)
                resealed.append((user, provider, try next.seal(key, user: user, provider: provider)))
            }
            for (user, provider, sealed) in resealed {
                try await connection.query(
                    """
                    UPDATE provider_key SET api_key = \(sealed.apiKey), organization_key = \(sealed.organizationKey)
                    WHERE user_id = \(user) AND provider = \(provider)
                    """, logger: logger)
            }
            try await connection.query("UPDATE store_meta SET value = \(newKey.idBytes) WHERE name = 'master_key_id'", logger: logger)
            // A write that read the old key's id before this commit must not land: its version check fails.
            try await connection.query("UPDATE user_account SET version = version + 1", logger: logger)
            try await PostgresAuditTable.append(.storeChange(.rotateMasterKey, application: nil), on: connection, logger: logger)
            return resealed.count
        }
    }
}

import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

/// The shared store: one PostgreSQL database that several instances serve at once. Values are sealed by
/// the same codec as the embedded store's, so the same master key opens both. Writes to one user
/// serialise on a transaction-scoped advisory lock of that user, held from the read to the commit, so an
/// update made through one instance is never lost to one made through another.
public struct PostgresKeyStore: KeyStore {
    /// The advisory lock class of per-user write locks; the object is the user id's `hashtext`. Two users
    /// whose ids hash alike only wait for each other.
    static let userLockClass: Int32 = 0x4550_0002

    let client: PostgresClient
    let masterKey: MasterKey
    let codec: SealedKeyCodec
    let logger: Logger

    public var masterKeyID: String { masterKey.id }

    /// A client for `url`, to run as a service of the application (or by `withRunningClient`).
    public static func makeClient(_ url: DatabaseURL, logger: Logger) -> PostgresClient {
        PostgresClient(configuration: url.clientConfiguration, backgroundLogger: logger)
    }

    /// The store on `client`, which must be running before the store is used; `prepare` it first.
    public init(client: PostgresClient, masterKey: MasterKey, logger: Logger) {
        self.client = client
        self.masterKey = masterKey
        self.codec = SealedKeyCodec(masterKey: masterKey)
        self.logger = logger
    }

    /// Readies the database: migrates it unless `migrate` is false, in which case a database not at this
    /// version's `DataVersion` is refused; then refuses one sealed under another master key, or records
    /// this one in a new database.
    public func prepare(migrate: Bool) async throws {
        if migrate {
            let applied = try await Self.migrate(client: client, logger: logger)
            if !applied.isEmpty { logger.notice("migrated the database", metadata: ["migrations": "\(applied)"]) }
        }
        let version = try await dataVersion()
        guard version == DataVersion.current else {
            throw StoreFault(
                "the database is at data version \(version), not \(DataVersion.current): run `external-provider migrate --database-url …` first, or start without --no-migrate")
        }
        try await transaction { [self] connection in try await claim(connection, insertIfMissing: true) }
    }

    /// The store on a running `client`, prepared.
    public static func open(client: PostgresClient, masterKey: MasterKey, migrate: Bool, logger: Logger) async throws -> PostgresKeyStore {
        let store = PostgresKeyStore(client: client, masterKey: masterKey, logger: logger)
        try await store.prepare(migrate: migrate)
        return store
    }

    /// Applies the migrations that are missing and returns their versions.
    public static func migrate(client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await PostgresAvailability.classifying { try await PostgresMigrations.apply(on: client, logger: logger) }
    }

    public func dataVersion() async throws -> Int {
        try await PostgresAvailability.classifying { [client, logger] in try await PostgresMigrations.dataVersion(on: client, logger: logger) }
    }

    func transaction<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await PostgresTransaction.run(on: client, logger: logger, body)
    }

    /// The master key this store seals under must be the one the database records: a new database
    /// records it, and a write after another instance rotated the key is refused rather than sealed under
    /// a key the database no longer records.
    func claim(_ connection: PostgresConnection, insertIfMissing: Bool) async throws {
        let rows = try await connection.query("SELECT value FROM store_meta WHERE name = 'master_key_id'", logger: logger)
        var recorded: Data?
        for try await value in rows.decode(Data.self) { recorded = value }
        guard let recorded else {
            guard insertIfMissing else { throw StoreFault("the database records no master key") }
            try await connection.query("INSERT INTO store_meta (name, value) VALUES ('master_key_id', \(masterKey.idBytes))", logger: logger)
            return
        }
        guard recorded == masterKey.idBytes else { throw StoreFault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
    }

    public func account(for user: UserID) async throws -> UserAccount? {
        try await PostgresAvailability.classifying { [self] in
            try await client.withConnection { connection in
                try await load(
                    user,
                    rows: connection.query(
                        """
                        SELECT NULL::bytea, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
                        FROM user_account a LEFT JOIN provider_key k ON k.user_id = a.user_id WHERE a.user_id = \(user.rawValue)
                        """, logger: logger))
            }
        }
    }

    // A write is five round trips: BEGIN, the user's lock, one read, one write, COMMIT. Each statement
    // costs the server more than PostgreSQL's own work (profiled), so reads and writes are joined.

    public func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount {
        try await transaction { [self] connection in
            // The lock comes first, in a statement of its own: the read after it sees every write that held
            // the lock before (under READ COMMITTED each statement takes a new snapshot).
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.userLockClass), hashtext(\(user.rawValue)))", logger: logger)
            // With the account, the master key the database records: another instance may have rotated it
            // since this one started, and a value is never sealed under a key the database no longer records.
            let loaded = try await load(
                user,
                rows: connection.query(
                    """
                    SELECT m.value, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
                    FROM store_meta m
                    LEFT JOIN user_account a ON a.user_id = \(user.rawValue)
                    LEFT JOIN provider_key k ON k.user_id = a.user_id
                    WHERE m.name = 'master_key_id'
                    """, logger: logger),
                claiming: true)
            let change = try decide(loaded)
            try await save(change, replacing: loaded, on: connection, now: Date())
            return change.account
        }
    }

    /// The account from rows of (master key id, global id, provider, sealed key, name, sealed organization),
    /// one per key, or one with no key; when `claiming`, the first column must be this store's master key.
    private func load(_ user: UserID, rows: PostgresRowSequence, claiming: Bool = false) async throws -> UserAccount? {
        var claimed = false
        var globalID: UUID?
        var keys: [Provider: ProviderKey] = [:]
        for try await (recorded, id, name, apiKey, apiKeyName, organizationKey) in rows.decode((Data?, UUID?, String?, Data?, String?, Data?).self) {
            if claiming, let recorded {
                guard recorded == masterKey.idBytes else { throw StoreFault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
                claimed = true
            }
            globalID = id
            // A provider this version does not know was written by a newer one: leave it untouched.
            guard let name, let apiKey, let provider = Provider(rawValue: name) else { continue }
            keys[provider] = try codec.open(.init(apiKey: apiKey, organizationKey: organizationKey), name: apiKeyName, user: user.rawValue, provider: name)
        }
        if claiming, !claimed { throw StoreFault("the database records no master key") }
        return globalID.map { UserAccount(user: user, globalID: $0, keys: keys) }
    }

    /// Writes only what changed, so a no-op update touches nothing, in one statement for one provider.
    /// Rows whose (key, organization) pair is new get the change's health; `verified_at` is when the
    /// provider accepted that pair.
    func save(_ change: AccountChange, replacing old: UserAccount?, on connection: PostgresConnection, now: Date) async throws {
        let new = change.account
        let user = new.user.rawValue
        let health = KeyHealthColumns(change.healthOfNewCredentials)
        let verifiedAt: Date? = if case .valid(let at) = change.healthOfNewCredentials { at } else { nil }
        // A new user's row goes in with its first key, in the same statement.
        var accountToInsert = old == nil
        for provider in Provider.allCases {
            let before = old?.keys[provider]
            let after = new.keys[provider]
            guard before != after else { continue }
            switch (before, after) {
            case (nil, let key?):
                let sealed = try codec.seal(key, user: user, provider: provider.rawValue)
                if accountToInsert {
                    accountToInsert = false
                    try await connection.query(
                        """
                        WITH account AS (INSERT INTO user_account (user_id, global_id, created_at) VALUES (\(user), \(new.globalID), \(now)))
                        INSERT INTO provider_key (user_id, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                            health, health_checked_at, health_code)
                        VALUES (\(user), \(provider.rawValue), \(sealed.apiKey), \(key.apiKeyName), \(sealed.organizationKey), \(verifiedAt),
                            \(now), \(now), \(health.word), \(health.checkedAt), \(health.code))
                        """, logger: logger)
                } else {
                    try await connection.query(
                        """
                        INSERT INTO provider_key (user_id, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                            health, health_checked_at, health_code)
                        VALUES (\(user), \(provider.rawValue), \(sealed.apiKey), \(key.apiKeyName), \(sealed.organizationKey), \(verifiedAt),
                            \(now), \(now), \(health.word), \(health.checkedAt), \(health.code))
                        """, logger: logger)
                }
            case (let previous?, let changed?):
                let sealed = try codec.seal(changed, user: user, provider: provider.rawValue)
                if previous.hasSameCredentials(as: changed) {
                    try await connection.query(
                        """
                        UPDATE provider_key SET api_key = \(sealed.apiKey), api_key_name = \(changed.apiKeyName),
                            organization_key = \(sealed.organizationKey), updated_at = \(now)
                        WHERE user_id = \(user) AND provider = \(provider.rawValue)
                        """, logger: logger)
                } else {
                    // A new (key, organization) pair starts over with the health the change gives it.
                    try await connection.query(
                        """
                        UPDATE provider_key SET api_key = \(sealed.apiKey), api_key_name = \(changed.apiKeyName),
                            organization_key = \(sealed.organizationKey), updated_at = \(now), verified_at = \(verifiedAt),
                            health = \(health.word), health_checked_at = \(health.checkedAt), health_code = \(health.code)
                        WHERE user_id = \(user) AND provider = \(provider.rawValue)
                        """, logger: logger)
                }
            case (_?, nil):
                try await connection.query("DELETE FROM provider_key WHERE user_id = \(user) AND provider = \(provider.rawValue)", logger: logger)
            case (nil, nil):
                break
            }
        }
        if accountToInsert {
            try await connection.query(
                "INSERT INTO user_account (user_id, global_id, created_at) VALUES (\(user), \(new.globalID), \(now))", logger: logger)
        }
    }
}

import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

/// The shared store: one PostgreSQL database that several instances serve at once. Values are sealed by
/// the same codec as the embedded store's, so the same master key opens both. Every write lands only if
/// the account is still at the version it read, so an update made through one instance is never lost to
/// one made through another; writers that lose a race queue on the user's advisory lock.
public struct PostgresKeyStore: KeyStore {
    /// The advisory lock class of per-user write locks, taken after a lost race; the object is the user
    /// id's `hashtext`. Two users whose ids hash alike only wait for each other.
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
        if insertIfMissing {
            // Instances that start together on a new database race here: the first key recorded wins, and
            // every other instance then compares its key with that one.
            try await connection.query(
                "INSERT INTO store_meta (name, value) VALUES ('master_key_id', \(masterKey.idBytes)) ON CONFLICT (name) DO NOTHING", logger: logger)
        }
        let rows = try await connection.query("SELECT value FROM store_meta WHERE name = 'master_key_id'", logger: logger)
        var recorded: Data?
        for try await value in rows.decode(Data.self) { recorded = value }
        guard let recorded else { throw StoreFault("the database records no master key") }
        guard recorded == masterKey.idBytes else { throw StoreFault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
    }

    public func checkReachable() async throws {
        try await PostgresAvailability.classifying { [client, logger] in try await client.query("SELECT 1", logger: logger) }
    }

    public func account(for user: UserID) async throws -> UserAccount? {
        try await PostgresAvailability.classifying { [self] in
            try await client.withConnection { connection in
                try await load(user, rows: connection.execute(ReadAccount(user: user.rawValue), logger: logger), claiming: false).account
            }
        }
    }

    // Every write is guarded by the account's version: it lands only if the account is still as it was
    // read, and it moves the version on. That check, not a lock, is what makes a lost update impossible.
    // A write first tries without a transaction, in two round trips (read, guarded write), which is
    // what a server that pays per statement (profiled: PostgresNIO's message handling, not PostgreSQL,
    // was the cost) wants. A write that loses a race waits for the user's advisory lock and tries again
    // there, so writers of one busy user queue rather than spin.

    public func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount {
        let landed = try await PostgresAvailability.classifying { [self] in
            try await client.withConnection { connection in try await attempt(user, decide, on: connection, inTransaction: false) }
        }
        if let landed { return landed }
        return try await transaction { [self] connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.userLockClass), hashtext(\(user.rawValue)))", logger: logger)
            // Under the lock only writers that did not take it can still get in between; each of their
            // wins is a write that landed, so this ends.
            while true {
                if let landed = try await attempt(user, decide, on: connection, inTransaction: true) { return landed }
            }
        }
    }

    /// One read and one guarded write. Returns the account after the write, or `nil` if another write
    /// came first (nothing was written). Outside a transaction, a change that needs more than one
    /// statement (keys of several providers) is left to the transaction.
    private func attempt(
        _ user: UserID, _ decide: @Sendable (UserAccount?) throws -> AccountChange, on connection: PostgresConnection, inTransaction: Bool
    ) async throws -> UserAccount? {
        // With the account, the master key the database records: another instance may have rotated it
        // since this one started, and a value is never sealed under a key the database no longer records.
        let (loaded, version) = try await load(
            user, rows: connection.execute(ReadAccountClaiming(user: user.rawValue), logger: logger), claiming: true)
        let change = try decide(loaded)
        let statements = try writes(change, replacing: loaded, version: version, now: Date())
        guard !statements.isEmpty else { return change.account }
        guard inTransaction || statements.count == 1 else { return nil }
        // The first statement carries the version check; the others belong to the same transaction.
        guard try await statements[0].run(on: connection, logger: logger) else { return nil }
        for statement in statements.dropFirst() {
            _ = try await statement.run(on: connection, logger: logger)
        }
        return change.account
    }

    /// The account and its version from rows of (master key id, version, global id, provider, sealed key,
    /// name, sealed organization), one per key, or one with no key. When `claiming`, the first column must
    /// be this store's master key id.
    private func load(
        _ user: UserID, rows: some AsyncSequence<AccountRow, any Error>, claiming: Bool
    ) async throws -> (account: UserAccount?, version: Int64?) {
        var claimed = false
        var version: Int64?
        var globalID: UUID?
        var keys: [Provider: ProviderKey] = [:]
        for try await (recorded, rowVersion, id, name, apiKey, apiKeyName, organizationKey) in rows {
            if claiming, let recorded {
                guard recorded == masterKey.idBytes else { throw StoreFault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
                claimed = true
            }
            version = rowVersion
            globalID = id
            // A provider this version does not know was written by a newer one: leave it untouched.
            guard let name, let apiKey, let provider = Provider(rawValue: name) else { continue }
            keys[provider] = try codec.open(.init(apiKey: apiKey, organizationKey: organizationKey), name: apiKeyName, user: user.rawValue, provider: name)
        }
        if claiming, !claimed { throw StoreFault("the database records no master key") }
        return (globalID.map { UserAccount(user: user, globalID: $0, keys: keys) }, version)
    }

    /// The statements that write what changed, none for a no-op. The first moves the account's version on,
    /// or makes the account, only if it is still at `version` (`nil`: there is none), and returns a row
    /// only then. Rows whose (key, organization) pair is new get the change's health; `verified_at` is when
    /// the provider accepted that pair.
    func writes(_ change: AccountChange, replacing old: UserAccount?, version: Int64?, now: Date) throws -> [KeyWrite] {
        let new = change.account
        let user = new.user.rawValue
        let health = KeyHealthColumns(change.healthOfNewCredentials)
        let verifiedAt: Date? = if case .valid(let at) = change.healthOfNewCredentials { at } else { nil }
        var statements: [KeyWrite] = []
        for provider in Provider.allCases {
            let before = old?.keys[provider]
            let after = new.keys[provider]
            guard before != after else { continue }
            if statements.isEmpty, let audit = change.audit,
                let prepared = try preparedWrite(
                    of: provider, from: before, to: after, user: user, globalID: new.globalID, version: version, audit: audit, health: health,
                    verifiedAt: verifiedAt, now: now)
            {
                statements.append(prepared)
                continue
            }
            var write = GuardedWrite()
            let (userID, providerName) = (write.bind(user), write.bind(provider.rawValue))
            switch (before, after) {
            case (nil, let key?):
                let sealed = try codec.seal(key, user: user, provider: provider.rawValue)
                let (apiKey, organization) = (try write.bind(sealed: sealed.apiKey), try write.bind(sealed: sealed.organizationKey))
                write.body = """
                    INSERT INTO provider_key (user_id, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                        health, health_checked_at, health_code)
                    SELECT user_id, \(providerName), \(apiKey), \(write.bind(key.apiKeyName)), \(organization),
                        \(write.bind(verifiedAt)), \(write.bind(now)), \(write.bind(now)), \(write.bind(health.word)), \(write.bind(health.checkedAt)),
                        \(write.bind(health.code))
                    FROM account RETURNING 1
                    """
            case (let previous?, let changed?):
                let sealed = try codec.seal(changed, user: user, provider: provider.rawValue)
                let (apiKey, organization) = (try write.bind(sealed: sealed.apiKey), try write.bind(sealed: sealed.organizationKey))
                // A new (key, organization) pair starts over with the health the change gives it.
                let newPair = previous.hasSameCredentials(as: changed) ? "" : """
                    , verified_at = \(write.bind(verifiedAt)), health = \(write.bind(health.word)),
                    health_checked_at = \(write.bind(health.checkedAt)), health_code = \(write.bind(health.code))
                    """
                write.body = """
                    UPDATE provider_key k SET api_key = \(apiKey), api_key_name = \(write.bind(changed.apiKeyName)),
                        organization_key = \(organization), updated_at = \(write.bind(now))\(newPair)
                    FROM account WHERE k.user_id = account.user_id AND k.provider = \(providerName) RETURNING 1
                    """
            case (_?, nil):
                write.body = "DELETE FROM provider_key k USING account WHERE k.user_id = account.user_id AND k.provider = \(providerName) RETURNING 1"
            case (nil, nil):
                continue
            }
            statements.append(.query(
                statements.isEmpty
                    ? write.guarded(user: userID, globalID: new.globalID, now: now, version: version, audit: change.audit)
                    : write.unguarded(user: userID)))
        }
        if statements.isEmpty && old == nil {
            // A new account with no key yet.
            var write = GuardedWrite()
            let userID = write.bind(user)
            write.body = "SELECT 1 FROM account"
            statements.append(.query(write.guarded(user: userID, globalID: new.globalID, now: now, version: nil, audit: change.audit)))
        }
        return statements
    }

    /// The change of one key as one of the prepared `GuardedKeyWrite`s, with its parameters in their order.
    private func preparedWrite(
        of provider: Provider, from before: ProviderKey?, to after: ProviderKey?, user: String, globalID: UUID, version: Int64?,
        audit: AuditEntry, health: KeyHealthColumns, verifiedAt: Date?, now: Date
    ) throws -> KeyWrite? {
        var bindings = PostgresBindings(capacity: 19)
        bindings.append(user)
        bindings.append(globalID)
        bindings.append(now)
        bindings.append(version)
        bindings.append(provider.rawValue)
        bindings.append(audit.at)
        bindings.append(audit.action.rawValue)
        bindings.append(audit.user?.rawValue)
        bindings.append(AuditField.stored(audit.fields))
        bindings.append(audit.application)
        bindings.append(audit.requestID)
        bindings.append(audit.verification)
        let shape: GuardedKeyWrite
        switch (before, after) {
        case (nil, let key?):
            shape = .insert
            try append(key, sealedFor: user, provider: provider, to: &bindings)
        case (let previous?, let key?):
            shape = .update(newPair: !previous.hasSameCredentials(as: key))
            try append(key, sealedFor: user, provider: provider, to: &bindings)
        case (_?, nil):
            shape = .delete
        case (nil, nil):
            return nil
        }
        if shape == .insert || shape == .update(newPair: true) {
            bindings.append(verifiedAt)
            bindings.append(health.word)
            bindings.append(health.checkedAt)
            bindings.append(health.code)
        }
        return .prepared(shape, bindings)
    }

    private func append(_ key: ProviderKey, sealedFor user: String, provider: Provider, to bindings: inout PostgresBindings) throws {
        let sealed = try codec.seal(key, user: user, provider: provider.rawValue)
        try bindings.append(sealed.apiKey)
        bindings.append(key.apiKeyName)
        try bindings.append(sealed.organizationKey)
    }
}

/// One statement of a write: a prepared one for the common changes, or one built for the rest.
enum KeyWrite {
    case prepared(GuardedKeyWrite, PostgresBindings)
    case query(PostgresQuery)

    /// Runs it; returns whether it returned a row (for the first statement: whether the write landed).
    func run(on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        switch self {
        case .prepared(let write, let bindings): try await write.run(bindings, on: connection, logger: logger)
        case .query(let query): try await connection.query(query, logger: logger).decode(Int.self).first { _ in true } != nil
        }
    }
}

/// One write of one key, after a common table expression `account` that names the user's row: guarded
/// (made, or moved to the next version, only if still at the version read) or not.
struct GuardedWrite {
    var binds = PostgresBindings()
    var body = ""

    /// `$n` for a new bind of `value`.
    mutating func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    mutating func bind(_ value: (some PostgresDynamicTypeEncodable)?) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    mutating func bind(sealed value: Data?) throws -> String {
        try binds.append(value)
        return "$\(binds.count)"
    }

    /// Inserts the account if there is none; moves its version on if it is still `version`. A concurrent
    /// write that came first leaves `account` empty, so the body writes nothing and returns no row, and
    /// `audit`, appended only for a row the body returned, is not appended either.
    mutating func guarded(user: String, globalID: UUID, now: Date, version: Int64?, audit: AuditEntry?) -> PostgresQuery {
        let (id, created, expected) = (bind(globalID), bind(now), bind(version))
        let account = """
            account AS (
                INSERT INTO user_account (user_id, global_id, created_at) VALUES (\(user), \(id), \(created))
                ON CONFLICT (user_id) DO UPDATE SET version = user_account.version + 1 WHERE user_account.version = \(expected)
                RETURNING user_id)
            """
        guard let audit else { return PostgresQuery(unsafeSQL: "WITH \(account)\n\(body)", binds: binds) }
        let append = PostgresAuditTable.append(audit, binding: &self, from: "(SELECT 1 FROM written LIMIT 1) AS w")
        return PostgresQuery(unsafeSQL: "WITH \(account),\nwritten AS (\(body)),\naudited AS (\(append))\nSELECT 1 FROM written", binds: binds)
    }

    /// For the later statements of a transaction whose first was guarded.
    func unguarded(user: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: "WITH account AS (SELECT \(user)::text AS user_id)\n\(body)", binds: binds)
    }
}

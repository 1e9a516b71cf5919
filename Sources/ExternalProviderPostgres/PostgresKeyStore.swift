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
            // The first statement holds the account's row until the commit, so no other write gets in.
            guard try await statement.run(on: connection, logger: logger) else { throw StoreFault("a later statement of one write did not land") }
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

    /// The statements that write what changed, none for a no-op: one per changed key (or one that only
    /// makes a new account with no key), each one of the prepared `GuardedKeyWrite`s. Each moves the
    /// account's version on, or makes the account, only if it is still where the statement before left
    /// it (the first: at `version`, `nil` meaning there is none), and returns a row only then. The first
    /// carries the change's audit entry. Rows whose (key, organization) pair is new get the change's
    /// health; `verified_at` is when the provider accepted that pair.
    func writes(_ change: AccountChange, replacing old: UserAccount?, version: Int64?, now: Date) throws -> [KeyWrite] {
        let new = change.account
        var statements: [KeyWrite] = []
        func write(_ shape: GuardedKeyWrite, of provider: Provider?) -> KeyWrite {
            let expected = statements.isEmpty ? version : (version ?? 0) + Int64(statements.count)
            var bindings = PostgresBindings(capacity: 19)
            bindings.append(new.user.rawValue)
            bindings.append(new.globalID)
            bindings.append(now)
            bindings.append(expected)
            bindings.append(provider?.rawValue)
            let audit = statements.isEmpty ? change.audit : nil
            bindings.append(audit?.at)
            bindings.append(audit?.action.rawValue)
            bindings.append(audit?.user?.rawValue)
            bindings.append(audit.map { AuditField.stored($0.fields) })
            bindings.append(audit?.application)
            bindings.append(audit?.requestID)
            bindings.append(audit?.verification)
            return KeyWrite(shape: shape, bindings: bindings)
        }
        for provider in Provider.allCases {
            let before = old?.keys[provider]
            let after = new.keys[provider]
            guard before != after else { continue }
            switch (before, after) {
            case (nil, let key?):
                var statement = write(.insert, of: provider)
                try statement.append(key, sealedWith: codec, for: new.user, provider: provider)
                statement.append(change.healthOfNewCredentials)
                statements.append(statement)
            case (let previous?, let key?):
                // A new (key, organization) pair starts over with the health the change gives it.
                let newPair = !previous.hasSameCredentials(as: key)
                var statement = write(.update(newPair: newPair), of: provider)
                try statement.append(key, sealedWith: codec, for: new.user, provider: provider)
                if newPair { statement.append(change.healthOfNewCredentials) }
                statements.append(statement)
            case (_?, nil):
                statements.append(write(.delete, of: provider))
            case (nil, nil):
                continue
            }
        }
        if statements.isEmpty && old == nil {
            statements.append(write(.accountOnly, of: nil))
        }
        return statements
    }
}

/// One statement of a write, with its parameters in their order.
struct KeyWrite {
    let shape: GuardedKeyWrite
    var bindings: PostgresBindings

    /// $13–$15: the key sealed, its name, the organization sealed.
    mutating func append(_ key: ProviderKey, sealedWith codec: SealedKeyCodec, for user: UserID, provider: Provider) throws {
        let sealed = try codec.seal(key, user: user.rawValue, provider: provider.rawValue)
        try bindings.append(sealed.apiKey)
        bindings.append(key.apiKeyName)
        try bindings.append(sealed.organizationKey)
    }

    /// $16–$19: `verified_at` (when the provider accepted the pair) and the health columns.
    mutating func append(_ health: KeyHealth) {
        let columns = KeyHealthColumns(health)
        let verifiedAt: Date? = if case .valid(let at) = health { at } else { nil }
        bindings.append(verifiedAt)
        bindings.append(columns.word)
        bindings.append(columns.checkedAt)
        bindings.append(columns.code)
    }

    /// Runs it; returns whether it landed (the account was still where it was expected).
    func run(on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        try await shape.run(bindings, on: connection, logger: logger)
    }
}

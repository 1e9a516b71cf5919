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
    /// Sorts failures into unavailable and faults, and names an outage's cause.
    let availability: PostgresAvailability
    /// Two batches at once: one waits for its commit while the next is read and decided. With one the
    /// cores idle during commits; with more, the writers split into smaller batches for nothing
    /// (bench/README.md).
    let batcher = WriteBatcher<Decide, FirstAttempt>(concurrentBatches: 2, batchLimit: 128)

    public var masterKeyID: String { masterKey.id }

    /// A client for `url`, to run as a service of the application (or by `withRunningClient`).
    public static func makeClient(_ url: DatabaseURL, logger: Logger) -> PostgresClient {
        PostgresClient(configuration: url.clientConfiguration, backgroundLogger: logger)
    }

    /// The store on `client`, which must be running before the store is used; `prepare` it first. With
    /// `url`, an outage is reported with its cause (a refused connection, TLS, credentials, no answer).
    public init(client: PostgresClient, masterKey: MasterKey, diagnosing url: DatabaseURL? = nil, logger: Logger) {
        self.client = client
        self.availability = PostgresAvailability(diagnosing: url)
        self.masterKey = masterKey
        self.codec = SealedKeyCodec(masterKey: masterKey)
        self.logger = logger
    }

    /// Readies the database: migrates it unless `migrate` is false, in which case a database not at this
    /// version's `DataVersion` is refused; then refuses one sealed under another master key, or records
    /// this one in a new database.
    public func prepare(migrate: Bool) async throws {
        if migrate {
            let applied = try await Self.migrate(client: client, availability: availability, logger: logger)
            if !applied.isEmpty { logger.notice("migrated the database", metadata: ["migrations": "\(applied)"]) }
        }
        let version = try await dataVersion()
        guard version == DataVersion.current else {
            throw Fault(.store, "the database is at data version \(version), not \(DataVersion.current): run `external-provider migrate --database-url …` first, or start without --no-migrate")
        }
        try await transaction { [self] connection in try await claim(connection, insertIfMissing: true) }
    }

    /// The store on a running `client`, prepared.
    public static func open(
        client: PostgresClient, masterKey: MasterKey, diagnosing url: DatabaseURL? = nil, migrate: Bool, logger: Logger
    ) async throws -> PostgresKeyStore {
        let store = PostgresKeyStore(client: client, masterKey: masterKey, diagnosing: url, logger: logger)
        try await store.prepare(migrate: migrate)
        return store
    }

    /// Applies the migrations that are missing and returns their versions.
    public static func migrate(client: PostgresClient, diagnosing url: DatabaseURL? = nil, logger: Logger) async throws -> [Int] {
        try await migrate(client: client, availability: PostgresAvailability(diagnosing: url), logger: logger)
    }

    static func migrate(client: PostgresClient, availability: PostgresAvailability, logger: Logger) async throws -> [Int] {
        try await availability.classifying { try await PostgresMigrations.apply(on: client, availability: availability, logger: logger) }
    }

    public func dataVersion() async throws -> Int {
        try await availability.classifying { [client, logger] in try await PostgresMigrations.dataVersion(on: client, logger: logger) }
    }

    func transaction<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await PostgresTransaction.run(on: client, availability: availability, logger: logger, body)
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
        guard let recorded else { throw Fault(.store, "the database records no master key") }
        guard recorded == masterKey.idBytes else { throw Fault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
    }

    public func checkReachable() async throws {
        try await availability.classifying { [client, logger] in try await client.query("SELECT 1", logger: logger) }
    }

    public func account(for user: UserID) async throws -> UserAccount? {
        try await availability.classifying { [self] in
            try await client.withConnection { connection in
                var account: UserAccount?
                for try await (_, globalID, name, apiKey, apiKeyName, organizationKey) in try await connection.execute(
                    ReadAccount(user: user.rawValue), logger: logger)
                {
                    account = try adding(name, apiKey, apiKeyName, organizationKey, to: account, of: user, globalID: globalID)
                }
                return account
            }
        }
    }

    // Every write is guarded by the account's version: it lands only if the account is still as it was
    // read, and it moves the version on. That check, not a lock, is what makes a lost update impossible.
    // A write first tries without a transaction, batched with the other writes under way in this
    // process: one read of all their accounts and one statement that writes them all, so a burst of
    // writers shares two round trips and one commit, the cost of a write being mostly per statement (in
    // PostgresNIO's message handling and PostgreSQL's executor). A write that loses a race, or needs
    // several statements (keys of several providers), waits for the user's advisory lock and tries again
    // in a transaction of its own, so writers of one busy user queue rather than spin.

    public func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount {
        switch await batcher.submit(decide, of: user.rawValue, run: { [self] batch in await firstAttempts(batch) }) {
        case .landed(let account): return account
        case .failed(let error): throw error
        case .needsTransaction: break
        }
        return try await transaction { [self] connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.userLockClass), hashtext(\(user.rawValue)))", logger: logger)
            // Under the lock only writers that did not take it can still get in between; each of their
            // wins is a write that landed, so this ends.
            while true {
                if let landed = try await attempt(user, decide, on: connection) { return landed }
            }
        }
    }

    /// The first attempts of a batch of writes: one read of every account, then the guarded writes, no
    /// transaction around them when each user has one write. A user with several writes in the batch (a
    /// busy user) has them decided one after another, each on the account the one before leaves, and
    /// written in rounds: the first write of every user in one statement, the second in the next, and so
    /// on, all in one transaction so that they share its commit.
    private func firstAttempts(_ batch: [(user: String, item: Decide)]) async -> [FirstAttempt] {
        do {
            return try await availability.classifying { [self] in
                try await client.withConnection { connection in
                    let accounts = try await load(Array(Set(batch.map(\.user))), on: connection)
                    var chains: [String: WriteChain] = [:]
                    for (index, (user, decide)) in batch.enumerated() {
                        var chain = chains[user] ?? WriteChain(account: accounts[user]?.0, version: accounts[user]?.1)
                        chain.decide(decide, index: index, store: self)
                        chains[user] = chain
                    }
                    let rounds = chains.values.map(\.writeCount).max() ?? 0
                    var landed: [Set<String>] = []
                    let now = Date()
                    func write() async throws {
                        for round in 0..<rounds {
                            // Only users whose earlier writes all landed: a later one expects their version.
                            var rows = chains.values.compactMap { $0.row(round) }.filter { row in landed.allSatisfy { $0.contains(row.user) } }
                            // Every batch locks its accounts in the same order, so two batches never deadlock.
                            rows.sort { $0.user.utf8.lexicographicallyPrecedes($1.user.utf8) }
                            landed.append(rows.isEmpty ? [] : try await GuardedWrites(rows: rows, now: now).run(on: connection, logger: logger))
                        }
                    }
                    do {
                        if rounds > 1 {
                            try await PostgresTransaction.run(on: connection, logger: logger) { try await write() }
                        } else {
                            try await write()
                        }
                    } catch let error as PSQLError where PostgresAvailability.isRetryable(error) {
                        // Nothing landed (e.g. a deadlock with `rotate-master-key`): each write tries again on its own.
                        landed = []
                    }
                    var outcomes = [FirstAttempt](repeating: .needsTransaction, count: batch.count)
                    for chain in chains.values { chain.settle(landed: landed, into: &outcomes) }
                    return outcomes
                }
            }
        } catch {
            return Array(repeating: .failed(error), count: batch.count)
        }
    }

    /// One read and one guarded write per statement, in the caller's transaction. Returns the account
    /// after the write, or `nil` if another write came first (nothing was written).
    private func attempt(_ user: UserID, _ decide: Decide, on connection: PostgresConnection) async throws -> UserAccount? {
        let (loaded, version) = try await load([user.rawValue], on: connection)[user.rawValue] ?? (nil, nil)
        let change = try decide(loaded)
        let rows = try writeRows(change, replacing: loaded, version: version)
        let now = Date()
        for (index, row) in rows.enumerated() {
            let landed = try await GuardedWrites(rows: [row], now: now).run(on: connection, logger: logger)
            guard landed.isEmpty else { continue }
            // The first statement carries the version check; it holds the account's row until the commit,
            // so a later one of the same change always lands.
            if index == 0 { return nil }
            throw Fault(.store, "a later statement of one write did not land")
        }
        return change.account
    }

    /// The accounts of `users` and their versions, by user (none for a user without an account), read
    /// with the master key the database records: another instance may have rotated it since this one
    /// started, and a value is never sealed under a key the database no longer records.
    private func load(_ users: [String], on connection: PostgresConnection) async throws -> [String: (UserAccount?, Int64?)] {
        var claimed = false
        var accounts: [String: (UserAccount?, Int64?)] = [:]
        for try await (recorded, rowUser, version, globalID, name, apiKey, apiKeyName, organizationKey) in try await connection.execute(
            ReadAccountsClaiming(users: users), logger: logger)
        {
            guard let recorded, recorded == masterKey.idBytes else {
                throw Fault.sealedUnderOtherKey(recorded: recorded ?? Data(), given: masterKey)
            }
            claimed = true
            guard let rowUser, let version, let globalID else { continue }
            let account = try adding(
                name, apiKey, apiKeyName, organizationKey, to: accounts[rowUser]?.0, of: UserID(trusted: rowUser), globalID: globalID)
            accounts[rowUser] = (account, version)
        }
        guard claimed else { throw Fault(.store, "the database records no master key") }
        return accounts
    }

    /// The account read so far (`nil` before its first row) with one read row's key opened and added. A
    /// row with no key adds nothing, nor does a provider this version does not know (written by a newer
    /// one, and left untouched).
    private func adding(
        _ name: String?, _ apiKey: Data?, _ apiKeyName: String?, _ organizationKey: Data?, to account: UserAccount?, of user: UserID,
        globalID: UUID
    ) throws -> UserAccount {
        var keys = account?.keys ?? [:]
        if let name, let apiKey, let provider = Provider(rawValue: name) {
            keys[provider] = try codec.open(
                .init(apiKey: apiKey, organizationKey: organizationKey), name: apiKeyName, user: user.rawValue, provider: name)
        }
        return UserAccount(user: user, globalID: globalID, keys: keys)
    }

    /// The statements' rows that write what the change changed (`AccountRowChanges`), none for a no-op:
    /// one per changed key, or one that only makes a new account with no key. Each lands only if the
    /// account is still where the row before left it (the first: at `version`, `nil` meaning there is
    /// none). The first carries the change's audit entry.
    func writeRows(_ change: AccountChange, replacing old: UserAccount?, version: Int64?) throws -> [GuardedWriteRow] {
        let new = change.account
        let changes = AccountRowChanges(from: old, to: new)
        var rows: [GuardedWriteRow] = []
        func row(_ operation: GuardedWriteRow.Operation, of provider: Provider?) -> GuardedWriteRow {
            GuardedWriteRow(
                user: new.user.rawValue, globalID: new.globalID,
                expectedVersion: GuardedWriteRow.version(after: version, rows: rows.count),
                operation: operation, provider: provider?.rawValue, audit: rows.isEmpty ? change.audit : nil)
        }
        for keyRow in changes.keyRows {
            switch keyRow {
            case .insert(let provider, let key):
                var insert = row(.insert, of: provider)
                try insert.seal(key, with: codec, provider: provider)
                insert.health = change.healthOfNewCredentials
                rows.append(insert)
            case .update(let provider, let key, let newCredentials):
                var update = row(newCredentials ? .updateNewPair : .update, of: provider)
                try update.seal(key, with: codec, provider: provider)
                if newCredentials { update.health = change.healthOfNewCredentials }
                rows.append(update)
            case .delete(let provider):
                rows.append(row(.delete, of: provider))
            }
        }
        if rows.isEmpty && changes.createsAccount {
            rows.append(row(.accountOnly, of: nil))
        }
        return rows
    }
}


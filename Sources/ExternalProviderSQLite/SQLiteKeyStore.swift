import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

/// SQLite's own errors are faults of the store.
extension DatabaseError: DatabaseFailure {}

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a returned write is on
/// disk, and `secure_delete=ON`, so removed values are overwritten rather than left in free pages.
/// Keys and organizations are sealed under the master key before they reach SQLite.
public struct SQLiteKeyStore: KeyStore {
    /// GRDB serialises every write on this one writer: that is what makes writes to a user serialise.
    /// Internal only so the module's tests can inspect the file's settings; nothing else writes through it.
    let writer: any DatabaseWriter
    /// Every key write goes through here, so concurrent writes share commits.
    let groupCommit: GroupCommitWriter
    let masterKey: MasterKey
    /// Seals and opens every stored key under `masterKey`.
    let codec: SealedKeyCodec

    public var masterKeyID: String { masterKey.id }

    /// Opens (creating if needed) the store at `path`, migrates it, and refuses it if its values are
    /// sealed under another master key.
    public init(path: String, masterKey: MasterKey) throws {
        try Self.createPrivately(path)
        let pool = try DatabasePool(path: path, configuration: Self.configuration())
        // DatabasePool turns WAL on after `prepareDatabase` and sets synchronous=NORMAL with it, which can
        // lose the last commits on power loss. The pool has one writer connection for its lifetime.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try self.init(writer: pool, masterKey: masterKey)
    }

    /// Makes the file with mode 0600 before SQLite does, whatever the umask: SQLite would make it 0644
    /// less the umask, and gives the WAL and shared-memory files the same mode as the database.
    private static func createPrivately(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            fchmod(descriptor, 0o600)
            close(descriptor)
        } else if errno != EEXIST {
            throw Fault(.store, "cannot create the store \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// A private in-memory store, for tests that need a real store but no file.
    public static func inMemory(masterKey: MasterKey = .generate()) throws -> SQLiteKeyStore {
        try SQLiteKeyStore(writer: DatabaseQueue(configuration: configuration()), masterKey: masterKey)
    }

    private init(writer: any DatabaseWriter, masterKey: MasterKey) throws {
        self.writer = writer
        self.groupCommit = GroupCommitWriter(writer)
        self.masterKey = masterKey
        self.codec = SealedKeyCodec(masterKey: masterKey)
        let migrator = Self.migrator
        try writer.read { db in
            if try migrator.hasBeenSuperseded(db) {
                throw Fault(.store, "the store was written by a newer version of external-provider; upgrade it to open this data dir")
            }
        }
        try migrator.migrate(writer)
        try writer.write { db in try Self.claim(db, for: masterKey) }
    }

    private static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        // A writer waits for another process's lock (a backup, the CLI) instead of failing at once.
        configuration.busyMode = .timeout(5)
        return configuration
    }

    /// Each migration's name and the `DataVersion` it brings the store to, in order.
    static let dataVersions: [(migration: String, dataVersion: Int)] = [
        ("v1 accounts, sealed provider keys, applications", 1),
        ("v2 application scopes and bound users, key health", 2),
        ("v3 audit trail", 3),
        ("v4 deferred key checks", 4),
        ("v5 audited providers", 5),
        ("v6 application policies, usage ledger", 6),
    ]

    /// The `DataVersion` the store's applied migrations brought it to.
    public func dataVersion() async throws -> Int {
        let applied = try await writer.read { db in try Self.migrator.appliedIdentifiers(db) }
        return Self.dataVersions.last { applied.contains($0.migration) }?.dataVersion ?? 0
    }

    /// Migrations are registered once under a name and never edited after they ship.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration(dataVersions[0].migration) { db in
            try db.create(table: UserAccountRecord.databaseTableName) { t in
                t.primaryKey("user", .text)
                t.column("global_id", .text).notNull().unique()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: ProviderKeyRecord.databaseTableName) { t in
                t.column("user", .text).notNull()
                    .references(UserAccountRecord.databaseTableName, onDelete: .cascade)
                t.column("provider", .text).notNull()
                t.column("api_key", .blob).notNull()
                t.column("api_key_name", .text)
                t.column("organization_key", .blob)
                t.column("verified_at", .datetime)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.primaryKey(["user", "provider"])
            }
            try db.create(table: ApplicationRecord.databaseTableName) { t in
                t.primaryKey("name", .text)
                t.column("id_hash", .blob).notNull().unique()
                t.column("created_at", .datetime).notNull()
                t.column("revoked_at", .datetime)
            }
            try db.create(table: StoreMetaRecord.databaseTableName) { t in
                t.primaryKey("name", .text)
                t.column("value", .blob).notNull()
            }
        }
        migrator.registerMigration(dataVersions[1].migration) { db in
            // Existing applications keep what they could do: the three operations. `default` was made
            // for the local user, who also gets the relay.
            try db.execute(sql: "ALTER TABLE application ADD COLUMN scopes TEXT NOT NULL DEFAULT 'keys'")
            try db.execute(sql: "ALTER TABLE application ADD COLUMN bound_user TEXT")
            try db.execute(sql: "UPDATE application SET scopes = 'keys,relay' WHERE name = 'default'")
            // `health` is one of the words in `KeyHealthColumns`; a key verified when stored starts valid.
            try db.execute(sql: "ALTER TABLE provider_key ADD COLUMN health TEXT NOT NULL DEFAULT 'unverified'")
            try db.execute(sql: "ALTER TABLE provider_key ADD COLUMN health_checked_at DATETIME")
            try db.execute(sql: "ALTER TABLE provider_key ADD COLUMN health_code TEXT")
            try db.execute(sql: "UPDATE provider_key SET health = 'valid', health_checked_at = verified_at WHERE verified_at IS NOT NULL")
        }
        migrator.registerMigration(dataVersions[2].migration) { db in
            for statement in SQLiteAuditTable.migration { try db.execute(sql: statement) }
        }
        migrator.registerMigration(dataVersions[3].migration) { db in
            // When a key's next check may run, after a check that got no answer; NULL: whenever it is due.
            try db.execute(sql: "ALTER TABLE provider_key ADD COLUMN recheck_after DATETIME")
        }
        migrator.registerMigration(dataVersions[4].migration) { db in
            // The stored names of the providers whose key changed (`open_ai,anthropic`); NULL before.
            try db.execute(sql: "ALTER TABLE audit_event ADD COLUMN providers TEXT")
        }
        migrator.registerMigration(dataVersions[5].migration) { db in
            // An application's limits as a virtual key (`PolicyColumns`); NULL: no limit.
            for column in ["models TEXT", "providers TEXT", "expires_at DATETIME", "rpm INTEGER", "tokens_per_day INTEGER", "tokens_per_month INTEGER"] {
                try db.execute(sql: "ALTER TABLE application ADD COLUMN \(column)")
            }
            for statement in Self.usageMigration { try db.execute(sql: statement) }
        }
        return migrator
    }

    /// A new store records the master key's id; an existing one must have been sealed under the same key.
    private static func claim(_ db: Database, for masterKey: MasterKey) throws {
        let recorded = try Data.fetchOne(
            db.cachedStatement(sql: "SELECT value FROM store_meta WHERE name = ?"), arguments: [StoreMetaRecord.masterKeyID])
        guard let recorded else {
            try StoreMetaRecord(name: StoreMetaRecord.masterKeyID, value: masterKey.idBytes).insert(db)
            return
        }
        guard recorded == masterKey.idBytes else { throw Fault.sealedUnderOtherKey(recorded: recorded, given: masterKey) }
    }

    public func checkReachable() async throws {
        try await writer.read { db in try db.execute(sql: "SELECT 1") }
    }

    public func account(for user: UserID) async throws -> UserAccount? {
        try await writer.read { [codec] db in try Self.load(user, in: db, codec: codec)?.account }
    }

    public func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount {
        try await groupCommit.write { [masterKey, codec] db in
            // Another process may have rotated the master key since this store opened: never seal under a
            // key the store no longer records.
            try Self.claim(db, for: masterKey)
            let loaded = try Self.load(user, in: db, codec: codec)
            let change = try decide(loaded?.account)
            try Self.save(change, replacing: loaded, in: db, codec: codec, now: Date())
            return change.account
        }
    }

    /// A user's account and the rows it was read from, which a save updates in place.
    private struct Loaded {
        let account: UserAccount
        let rows: [Provider: ProviderKeyRecord]
    }

    // The statements below run on every request: they are prepared once per connection and reused
    // (`cachedStatement`): compiling SQL each time would be most of the writer's work.

    private static func load(_ user: UserID, in db: Database, codec: SealedKeyCodec) throws -> Loaded? {
        let globalIDText = try String.fetchOne(
            db.cachedStatement(sql: "SELECT global_id FROM user_account WHERE user = ?"), arguments: [user.rawValue])
        guard let globalIDText else { return nil }
        guard let globalID = UUID(uuidString: globalIDText) else {
            throw Fault(.store, "user_account row has a malformed global_id")
        }
        let records = try ProviderKeyRecord.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM provider_key WHERE user = ?"), arguments: [user.rawValue])
        var keys: [Provider: ProviderKey] = [:]
        var rows: [Provider: ProviderKeyRecord] = [:]
        for record in records {
            // A provider this version does not know was written by a newer one: leave it untouched.
            guard let provider = Provider(rawValue: record.provider) else { continue }
            keys[provider] = try record.key(openedWith: codec)
            rows[provider] = record
        }
        return Loaded(account: UserAccount(user: user, globalID: globalID, keys: keys), rows: rows)
    }

    /// Writes what the change changed (`AccountRowChanges`), with its audit entry; `verified_at` is when
    /// the provider accepted a new pair.
    private static func save(_ change: AccountChange, replacing old: Loaded?, in db: Database, codec: SealedKeyCodec, now: Date) throws {
        let new = change.account
        let rows = AccountRowChanges(from: old?.account, to: new)
        guard !rows.isEmpty else { return }
        if let audit = change.audit { try SQLiteAuditTable.append(audit, in: db) }
        let health = KeyHealthColumns(change.healthOfNewCredentials)
        if rows.createsAccount {
            try db.cachedStatement(sql: "INSERT INTO user_account (user, global_id, created_at) VALUES (?, ?, ?)")
                .execute(arguments: [new.user.rawValue, new.globalID.uuidString.lowercased(), now])
        }
        for keyRow in rows.keyRows {
            switch keyRow {
            case .insert(let provider, let key):
                let row = try ProviderKeyRecord(user: new.user, provider: provider, key: key, sealedWith: codec, createdAt: now, updatedAt: now)
                try db.cachedStatement(sql: """
                    INSERT INTO provider_key (user, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                        health, health_checked_at, health_code)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                    .execute(arguments: [
                        row.user, row.provider, row.apiKey, row.apiKeyName, row.organizationKey, health.verifiedAt, row.createdAt, row.updatedAt,
                        health.word, health.checkedAt, health.code,
                    ])
            case .update(let provider, let key, let newCredentials):
                guard var row = old?.rows[provider] else { throw Fault(.bug, "provider_key row for a changed key was not loaded") }
                try row.store(key, sealedWith: codec)
                row.updatedAt = now
                try db.cachedStatement(sql: """
                    UPDATE provider_key SET api_key = ?, api_key_name = ?, organization_key = ?, updated_at = ?
                    WHERE user = ? AND provider = ?
                    """)
                    .execute(arguments: [row.apiKey, row.apiKeyName, row.organizationKey, row.updatedAt, row.user, row.provider])
                if newCredentials {
                    try db.cachedStatement(sql: """
                        UPDATE provider_key SET verified_at = ?, health = ?, health_checked_at = ?, health_code = ?
                        WHERE user = ? AND provider = ?
                        """)
                        .execute(arguments: [health.verifiedAt, health.word, health.checkedAt, health.code, row.user, row.provider])
                }
            case .delete(let provider):
                try db.cachedStatement(sql: "DELETE FROM provider_key WHERE user = ? AND provider = ?")
                    .execute(arguments: [new.user.rawValue, provider.rawValue])
            }
        }
    }
}

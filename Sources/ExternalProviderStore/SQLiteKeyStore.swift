import ExternalProviderCore
import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a returned write is on
/// disk, and `secure_delete=ON`, so removed keys are overwritten rather than left in free pages.
public struct SQLiteKeyStore: KeyStore {
    /// GRDB serialises every write on this one writer: that is what makes writes to a user serialise.
    /// Internal only so the module's tests can inspect the file's settings; nothing else writes through it.
    let writer: any DatabaseWriter
    public let schemaVersion: Int

    /// Opens (creating if needed) the store at `path` and migrates it.
    public init(path: String) throws {
        let pool = try DatabasePool(path: path, configuration: Self.configuration())
        // DatabasePool turns WAL on after `prepareDatabase` and sets synchronous=NORMAL with it, which can
        // lose the last commits on power loss. The pool has one writer connection for its lifetime.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try self.init(writer: pool)
    }

    /// A private in-memory store, for tests that need a real store but no file.
    public static func inMemory() throws -> SQLiteKeyStore {
        try SQLiteKeyStore(writer: DatabaseQueue(configuration: configuration()))
    }

    private init(writer: any DatabaseWriter) throws {
        self.writer = writer
        let migrator = Self.migrator
        try writer.write { db in
            if try migrator.hasBeenSuperseded(db) {
                throw StoreFault("the store was written by a newer version of external-provider; upgrade it to open this data dir")
            }
        }
        try migrator.migrate(writer)
        self.schemaVersion = migrator.migrations.count
    }

    private static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        // A writer waits for another process's lock (a backup, the sqlite3 shell) instead of failing at once.
        configuration.busyMode = .timeout(5)
        return configuration
    }

    /// Migrations are registered once under a name and never edited after they ship.
    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 accounts and provider keys") { db in
            try db.create(table: UserAccountRecord.databaseTableName) { t in
                t.primaryKey("user", .text)
                t.column("global_id", .text).notNull().unique()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: ProviderKeyRecord.databaseTableName) { t in
                t.column("user", .text).notNull()
                    .references(UserAccountRecord.databaseTableName, onDelete: .cascade)
                t.column("provider", .text).notNull()
                t.column("api_key", .text).notNull()
                t.column("api_key_name", .text)
                t.column("organization_key", .text)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.primaryKey(["user", "provider"])
            }
        }
        return migrator
    }

    public func account(for user: UserID) async throws -> UserAccount? {
        try await writer.read { db in try Self.load(user, in: db) }
    }

    public func perform(_ operation: KeyOperation, for user: UserID) async throws -> UserAccount {
        try await writer.write { db in
            let before = try Self.load(user, in: db)
            let after = try operation.apply(to: before, user: user)
            try Self.save(after, replacing: before, in: db, now: Date())
            return after
        }
    }

    private static func load(_ user: UserID, in db: Database) throws -> UserAccount? {
        guard let row = try UserAccountRecord.fetchOne(db, key: user.rawValue) else { return nil }
        guard let globalID = UUID(uuidString: row.globalID) else {
            throw StoreFault("user_account row has a malformed global_id")
        }
        let rows = try ProviderKeyRecord.filter(ProviderKeyRecord.Columns.user == user.rawValue).fetchAll(db)
        var keys: [Provider: ProviderKey] = [:]
        for row in rows {
            // A provider this version does not know was written by a newer one: leave it untouched.
            guard let provider = Provider(rawValue: row.provider) else { continue }
            keys[provider] = row.key
        }
        return UserAccount(user: user, globalID: globalID, keys: keys)
    }

    /// Writes only what changed between `old` and `new`, so a no-op update touches nothing on disk.
    private static func save(_ new: UserAccount, replacing old: UserAccount?, in db: Database, now: Date) throws {
        if old == nil {
            try UserAccountRecord(user: new.user.rawValue, globalID: new.globalID.uuidString.lowercased(), createdAt: now).insert(db)
        }
        for provider in Provider.allCases {
            let before = old?.keys[provider]
            let after = new.keys[provider]
            guard before != after else { continue }
            let key = ["user": new.user.rawValue, "provider": provider.rawValue]
            switch (before, after) {
            case (nil, let key?):
                try ProviderKeyRecord(user: new.user, provider: provider, key: key, createdAt: now, updatedAt: now).insert(db)
            case (_?, let changed?):
                guard var row = try ProviderKeyRecord.fetchOne(db, key: key) else {
                    throw StoreFault("provider_key row vanished inside its transaction")
                }
                row.apiKey = changed.apiKey
                row.apiKeyName = changed.apiKeyName
                row.organizationKey = changed.organizationKey
                row.updatedAt = now
                try row.update(db)
            case (_?, nil):
                _ = try ProviderKeyRecord.deleteOne(db, key: key)
            case (nil, nil):
                break
            }
        }
    }
}

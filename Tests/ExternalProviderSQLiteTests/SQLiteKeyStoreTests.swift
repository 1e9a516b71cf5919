import ExternalProviderCore
import ExternalProviderTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderStore

@Suite("SQLite store")
struct SQLiteKeyStoreTests {
    let user = UserID(trusted: "auth0|store-test")
    let masterKey = MasterKey.generate()

    func create(_ apiKey: String, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .create(try NewKey(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    func update(_ apiKey: String? = nil, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    @Test("the file is in WAL mode with synchronous=FULL, secure_delete and foreign keys on")
    func durabilitySettings() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: masterKey)
        let settings = try await store.writer.write { db in
            try ["journal_mode", "synchronous", "secure_delete", "foreign_keys"].map {
                try String.fetchOne(db, sql: "PRAGMA \($0)") ?? ""
            }
        }
        #expect(settings == ["wal", "2", "1", "1"])
    }

    @Test("what a write returned is there after the store is reopened")
    func survivesReopen() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        let written = try await SQLiteKeyStore(path: path, masterKey: masterKey).perform(create("sk-persisted", name: "n", organization: "org-9"), for: user)
        let reopened = try SQLiteKeyStore(path: path, masterKey: masterKey)
        #expect(try await reopened.account(for: user) == written)
        #expect(try await reopened.dataVersion() == DataVersion.current)
    }

    @Test("a rejected operation changes nothing")
    func rejectedChangesNothing() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let before = try await store.perform(create("sk-original", name: "n"), for: user)
        await #expect(throws: KeyWriteRejection.conflict(.keyExists(user, .openAI))) {
            try await store.perform(create("sk-other"), for: user)
        }
        #expect(try await store.account(for: user) == before)

        let stranger = UserID(trusted: "stranger")
        await #expect(throws: KeyWriteRejection.conflict(.unknownUser(stranger))) {
            try await store.perform(update(name: "x"), for: stranger)
        }
        await #expect(throws: KeyWriteRejection.conflict(.unknownUser(stranger))) {
            try await store.perform(.delete([.openAI]), for: stranger)
        }
        #expect(try await store.account(for: stranger) == nil)
    }

    @Test("keys are rows keyed by (user, provider); delete removes the row and keeps the user")
    func rowsPerProvider() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let created = try await store.perform(create("sk-row"), for: user)
        let primaryKey = try await store.writer.read { db in try db.primaryKey("provider_key").columns }
        #expect(primaryKey == ["user", "provider"])
        let rows = try await store.writer.read { db in try Row.fetchAll(db, sql: "SELECT user, provider FROM provider_key") }
        #expect(rows.map { [$0["user"] as String, $0["provider"] as String] } == [[user.rawValue, "open_ai"]])

        let deleted = try await store.perform(.delete([.openAI]), for: user)
        #expect(deleted.globalID == created.globalID)
        #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM provider_key") } == 0)
        #expect(try await store.account(for: user) == UserAccount(user: user, globalID: created.globalID))
    }

    @Test("a store migrated by a newer version is refused")
    func refusesNewerSchema() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        let store = try SQLiteKeyStore(path: path, masterKey: masterKey)
        try await store.writer.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v999 from the future')")
        }
        #expect(throws: Fault.self) { try SQLiteKeyStore(path: path, masterKey: masterKey) }
    }

    @Test("50 concurrent updates to one user over two fields lose nothing")
    func concurrentUpdatesSerialise() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: masterKey)
        let initial = try await store.perform(create("sk-concurrent", name: "name-start", organization: "org-start"), for: user)

        let writes = try await withThrowingTaskGroup(of: TwoFieldWrite.self) { group in
            for index in 0..<50 {
                let field: TwoFieldWrite.Field = index.isMultiple(of: 2) ? .name : .organization
                let value = field == .name ? "name-\(index)" : "org-\(index)"
                let operation = field == .name ? try update(name: value) : try update(organization: value)
                group.addTask {
                    let after = try await store.perform(operation, for: user)
                    return TwoFieldWrite(field: field, value: value, seen: after.keys[.openAI])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let final = try #require(try await store.account(for: user)?.keys[.openAI])
        #expect(serialOrderExplains(writes, from: try #require(initial.keys[.openAI]), to: final))
    }

    @Test("the serial-order check rejects a lost update")
    func serialCheckCatchesLostUpdate() {
        let initial = ProviderKey(apiKey: "k", apiKeyName: "n0", organizationKey: "o0")
        // Both writers read the initial record; the second overwrote the first one's name with the old one.
        let writes = [
            TwoFieldWrite(field: .name, value: "n1", seen: ProviderKey(apiKey: "k", apiKeyName: "n1", organizationKey: "o0")),
            TwoFieldWrite(field: .organization, value: "o1", seen: ProviderKey(apiKey: "k", apiKeyName: "n0", organizationKey: "o1")),
        ]
        #expect(!serialOrderExplains(writes, from: initial, to: ProviderKey(apiKey: "k", apiKeyName: "n0", organizationKey: "o1")))
        let serial = [writes[0], TwoFieldWrite(field: .organization, value: "o1", seen: ProviderKey(apiKey: "k", apiKeyName: "n1", organizationKey: "o1"))]
        #expect(serialOrderExplains(serial, from: initial, to: ProviderKey(apiKey: "k", apiKeyName: "n1", organizationKey: "o1")))
    }

    @Test("a replaced and a deleted key leave no copy in the store's files: neither sealed (secure_delete) nor in clear")
    func secureDelete() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: masterKey)
        let first = "sk-first-\(UUID().uuidString)"
        let second = "sk-second-\(UUID().uuidString)"
        // Values are sealed, so the plaintext is never on disk whatever SQLite does: what secure_delete
        // must wipe is the sealed blob of a value that was replaced or deleted.
        func sealedBlobs() async throws -> [Data] {
            try await store.writer.read { db in
                try Row.fetchAll(db, sql: "SELECT api_key, organization_key FROM provider_key").flatMap { row in
                    [row["api_key"] as Data?, row["organization_key"] as Data?].compactMap { $0 }
                }
            }
        }
        _ = try await store.perform(create(first, organization: "org-first-0001"), for: user)
        let firstBlobs = try await sealedBlobs()
        _ = try await store.perform(update(second), for: user)
        let secondBlobs = try await sealedBlobs()
        #expect(firstBlobs.count == 2 && secondBlobs.count == 2 && Set(firstBlobs).isDisjoint(with: secondBlobs))
        _ = try await store.perform(.delete([.openAI]), for: user)
        try await store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file(name)))
            for (index, blob) in (firstBlobs + secondBlobs).enumerated() {
                #expect(bytes.range(of: blob) == nil, "\(name) still holds sealed value \(index)")
            }
            for secret in [first, second] {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(name) holds a key")
            }
        }
    }
}

@Suite("Group commit")
struct GroupCommitTests {
    @Test("writes that share a commit stay independent: one rejected write rolls back alone")
    func independentWrites() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: .generate())
        let results = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for index in 0..<40 {
                // Half the writes race to create the same user: exactly one may win.
                let user = index.isMultiple(of: 2) ? "contested" : "own-\(index)"
                let operation = KeyOperation.create(try NewKey(provider: .openAI, apiKey: "sk-group-\(index)", apiKeyName: nil, organizationKey: nil))
                group.addTask {
                    do {
                        _ = try await store.perform(operation, for: UserID(trusted: user))
                        return (user, true)
                    } catch KeyWriteRejection.conflict {
                        return (user, false)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.0 == "contested" && $0.1 }.count == 1)
        #expect(results.filter { $0.0 != "contested" }.allSatisfy { $0.1 })
        let rows = try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM provider_key") }
        #expect(rows == 21)
        let reopened = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: store.masterKey)
        for index in stride(from: 1, to: 40, by: 2) {
            #expect(try await reopened.account(for: UserID(trusted: "own-\(index)"))?.keys[.openAI]?.apiKey == "sk-group-\(index)")
        }
    }
}

/// Counts the commits of one database.
final class CommitCounter: TransactionObserver, @unchecked Sendable {
    private let commits = Mutex(0)
    var count: Int { commits.withLock { $0 } }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { true }
    func databaseDidChange(with event: DatabaseEvent) {}
    func databaseDidCommit(_ db: Database) { commits.withLock { $0 += 1 } }
    func databaseDidRollback(_ db: Database) {}
}

@Suite("Group commit, at the level of SQL")
struct GroupCommitBatchTests {
    @Test("writes queued behind a commit share the next one; a write that fails after its SQL ran is undone alone")
    func sharedBatchWithAFailure() async throws {
        let directory = try TemporaryDirectory()
        let pool = try DatabasePool(path: directory.file("batch.sqlite"))
        try await pool.write { db in try db.execute(sql: "CREATE TABLE item (name TEXT PRIMARY KEY)") }
        let commits = CommitCounter()
        pool.add(transactionObserver: commits, extent: .databaseLifetime)
        let writer = GroupCommitWriter(pool)

        // The first write holds the writer until every other write is queued behind it.
        let release = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await writer.write { db in
                try db.execute(sql: "INSERT INTO item VALUES ('holder')")
                // GRDB's writer queue is not async: wait on it the way a slow write would.
                let semaphore = DispatchSemaphore(value: 0)
                Task { for await _ in release.stream { break }; semaphore.signal() }
                semaphore.wait()
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        let before = commits.count
        let queued = (0..<8).map { index in
            Task {
                try await writer.write { db in
                    try db.execute(sql: "INSERT INTO item VALUES (?)", arguments: ["item-\(index)"])
                    // The SQL above has run; this second statement breaks a constraint, so the write fails
                    // with a row of its own already written in the shared transaction.
                    if index == 3 { try db.execute(sql: "INSERT INTO item VALUES ('holder')") }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        release.continuation.yield()
        try await holder.value
        var failures = 0
        for (index, task) in queued.enumerated() {
            do {
                try await task.value
                #expect(index != 3)
            } catch is DatabaseError {
                failures += 1
                #expect(index == 3)
            }
        }
        #expect(failures == 1)
        // The holder's commit, then one commit for all eight queued writes.
        #expect(commits.count - before == 2, "the queued writes took \(commits.count - before - 1) commits")
        let names = try await pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM item ORDER BY name") }
        #expect(names == ["holder"] + [0, 1, 2, 4, 5, 6, 7].map { "item-\($0)" })
    }
}

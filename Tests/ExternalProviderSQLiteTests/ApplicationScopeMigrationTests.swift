import ExternalProviderCore
import ExternalProviderTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderStore

@Suite("Application scopes and bound users")
struct ApplicationScopeMigrationTests {
    let masterKey = MasterKey.generate()

    @Test("migrating a v1 store: `default` gains relay, every other application keeps keys only")
    func migration() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        // A store as the previous release left it: the v1 migration only, two applications.
        let queue = try DatabaseQueue(path: path)
        try SQLiteKeyStore.migrator.migrate(queue, upTo: "v1 accounts, sealed provider keys, applications")
        try await queue.write { db in
            for name in ["default", "ci-bot"] {
                try db.execute(
                    sql: "INSERT INTO application (name, id_hash, created_at) VALUES (?, ?, ?)",
                    arguments: [name, ApplicationID.hash("id-of-\(name)"), Date()])
            }
        }
        try queue.close()

        let store = try SQLiteKeyStore(path: path, masterKey: masterKey)
        #expect(try await store.dataVersion() == DataVersion.current)
        #expect(try await store.activeApplication(id: "id-of-default") == ApplicationGrant(name: "default", scopes: [.keys, .relay], boundUser: nil))
        #expect(try await store.activeApplication(id: "id-of-ci-bot") == ApplicationGrant(name: "ci-bot", scopes: [.keys], boundUser: nil))
        let stored = try await store.writer.read { db in try String.fetchAll(db, sql: "SELECT scopes FROM application ORDER BY name") }
        #expect(stored == ["keys", "keys,relay"])
    }

    @Test("new applications: keys by default, relay only when bound, or the scopes given")
    func registration() async throws {
        let store = try SQLiteKeyStore.inMemory(masterKey: masterKey)
        let plain = try await store.registerApplication(named: "plain")
        let bound = try await store.registerApplication(named: "bound", boundUser: "auth0|ada")
        let both = try await store.registerApplication(named: "both", scopes: [.relay, .keys], boundUser: "auth0|ada")
        #expect(try await store.activeApplication(id: plain)?.scopes == [.keys])
        #expect(try await store.activeApplication(id: bound) == ApplicationGrant(name: "bound", scopes: [.relay], boundUser: "auth0|ada"))
        #expect(try await store.activeApplication(id: both)?.scopes == [.keys, .relay])
        await #expect(throws: ApplicationError.noScopes) { try await store.registerApplication(named: "none", scopes: [], boundUser: nil) }
        _ = try await store.revokeApplication(named: "bound")
        #expect(try await store.activeApplication(id: bound) == nil)
    }
}

import ExternalProviderCore
import ExternalProviderTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderStore

@Suite("Sealing keys at rest")
struct SealingTests {
    let context = SealContext(user: "u", provider: "open_ai", field: "api_key")

    @Test("a sealed value opens with the same key and context, and every seal uses a fresh nonce")
    func roundTrip() throws {
        let key = MasterKey.generate()
        let first = try key.seal("sk-secret-value", for: context)
        let second = try key.seal("sk-secret-value", for: context)
        #expect(first != second)
        #expect(try key.open(first, for: context) == "sk-secret-value")
        #expect(first[0] == MasterKey.formatVersion)
        #expect(first.subdata(in: 1..<9) == key.idBytes)
        #expect(first.range(of: Data("sk-secret-value".utf8)) == nil)
    }

    @Test("a value moved to another user, provider or field, or altered, does not open")
    func boundToItsPlace() throws {
        let key = MasterKey.generate()
        let sealed = try key.seal("sk-secret-value", for: context)
        for other in [
            SealContext(user: "v", provider: "open_ai", field: "api_key"),
            SealContext(user: "u", provider: "other", field: "api_key"),
            SealContext(user: "u", provider: "open_ai", field: "organization_key"),
        ] {
            #expect(throws: SealError.authenticationFailed) { try key.open(sealed, for: other) }
        }
        var altered = sealed
        altered[altered.count - 1] ^= 1
        #expect(throws: SealError.authenticationFailed) { try key.open(altered, for: context) }
        var future = sealed
        future[0] = 9
        #expect(throws: SealError.unsupportedFormat(9)) { try key.open(future, for: context) }
    }

    @Test("a value sealed under another master key names that key and does not open")
    func otherKey() throws {
        let sealer = MasterKey.generate()
        let sealed = try sealer.seal("sk-secret-value", for: context)
        #expect(throws: SealError.sealedUnderOtherKey(sealer.id)) { try MasterKey.generate().open(sealed, for: context) }
    }

    @Test("master keys are 32 bytes of base64")
    func masterKeyFormat() throws {
        let key = MasterKey.generate()
        #expect(try MasterKey(base64: key.base64 + "\n").id == key.id)
        #expect(throws: MasterKeyError.notBase64) { try MasterKey(base64: "not base64!") }
        #expect(throws: MasterKeyError.wrongLength(16)) { try MasterKey(base64: Data(count: 16).base64EncodedString()) }
        #expect(key.id.count == 16)
    }

    @Test("the store keeps only sealed values in its key columns")
    func storeSealsColumns() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let user = UserID(trusted: "u")
        _ = try await store.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-column-check-1234567", apiKeyName: "name", organizationKey: "org-column-check")), for: user)
        let row = try #require(try await store.writer.read { db in try Row.fetchOne(db, sql: "SELECT api_key, organization_key, api_key_name FROM provider_key") })
        let apiKey: Data = row["api_key"]
        let organization: Data = row["organization_key"]
        #expect(apiKey.range(of: Data("sk-column-check".utf8)) == nil)
        #expect(organization.range(of: Data("org-column-check".utf8)) == nil)
        #expect(try store.masterKey.open(apiKey, for: SealContext(user: "u", provider: "open_ai", field: "api_key")) == "sk-column-check-1234567")
        #expect(row["api_key_name"] as String == "name")
    }

    @Test("a sealed value copied onto another user's row makes reads of that row fail, not return it")
    func copiedValueFails() async throws {
        let store = try SQLiteKeyStore.inMemory()
        for name in ["victim", "attacker"] {
            _ = try await store.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-\(name)-key-0000000", apiKeyName: nil, organizationKey: nil)), for: UserID(trusted: name))
        }
        try await store.writer.write { db in
            try db.execute(sql: "UPDATE provider_key SET api_key = (SELECT api_key FROM provider_key WHERE user = 'victim') WHERE user = 'attacker'")
        }
        await #expect(throws: Fault.self) { try await store.account(for: UserID(trusted: "attacker")) }
        #expect(try await store.account(for: UserID(trusted: "victim"))?.keys[.openAI]?.apiKey == "sk-victim-key-0000000")
    }

    @Test("a store whose key another process rotated refuses further writes instead of sealing under the old key")
    func rotatedUnderARunningStore() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        let old = MasterKey.generate()
        let running = try SQLiteKeyStore(path: path, masterKey: old)
        let user = UserID(trusted: "u")
        _ = try await running.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-before-rotation-00", apiKeyName: nil, organizationKey: nil)), for: user)
        let new = MasterKey.generate()
        _ = try await SQLiteKeyStore(path: path, masterKey: old).rotateMasterKey(to: new)
        await #expect(throws: Fault.self) {
            try await running.perform(.update(try KeyPatch(provider: .openAI, apiKey: "sk-after-rotation-000", apiKeyName: nil, organizationKey: nil)), for: user)
        }
        #expect(try await SQLiteKeyStore(path: path, masterKey: new).account(for: user)?.keys[.openAI]?.apiKey == "sk-before-rotation-00")
    }

    @Test("a store sealed under one master key is refused with another")
    func refusesOtherMasterKey() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        let original = MasterKey.generate()
        _ = try SQLiteKeyStore(path: path, masterKey: original)
        #expect(try SQLiteKeyStore.recordedMasterKeyID(at: path) == original.id)
        #expect(throws: Fault.self) { try SQLiteKeyStore(path: path, masterKey: MasterKey.generate()) }
    }

    @Test("rotation re-seals every row in one go; then only the new key opens the store")
    func rotation() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        let old = MasterKey.generate()
        let new = MasterKey.generate()
        let store = try SQLiteKeyStore(path: path, masterKey: old)
        var expected: [UserAccount] = []
        for index in 0..<5 {
            let user = UserID(trusted: "user-\(index)")
            expected.append(try await store.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-rotate-\(index)-000000", apiKeyName: "n\(index)", organizationKey: "org-\(index)")), for: user))
        }
        #expect(try await store.rotateMasterKey(to: new) == 5)
        #expect(throws: Fault.self) { try SQLiteKeyStore(path: path, masterKey: old) }
        let reopened = try SQLiteKeyStore(path: path, masterKey: new)
        for account in expected {
            #expect(try await reopened.account(for: account.user) == account)
        }
    }
}

@Suite("Application registry")
struct ApplicationRegistryTests {
    @Test("an id is 128 random bits, URL-safe, and only its hash is stored")
    func registerStoresHash() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: .generate())
        let id = try await store.registerApplication(named: "cli")
        #expect(id.count == 22)
        #expect(id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(try await store.isActiveApplication(id: id))
        #expect(try await !store.isActiveApplication(id: id + "x"))
        try await store.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file("store.sqlite")))
        #expect(bytes.range(of: Data(id.utf8)) == nil)
        #expect(bytes.range(of: ApplicationID.hash(id)) != nil)
    }

    @Test("revoking stops an id at once; names are unique and checked")
    func revokeAndNames() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let id = try await store.registerApplication(named: "desktop")
        await #expect(throws: ApplicationError.nameTaken("desktop")) { try await store.registerApplication(named: "desktop") }
        await #expect(throws: ApplicationError.invalidName) { try await store.registerApplication(named: "has space") }
        await #expect(throws: ApplicationError.invalidName) { try await store.registerApplication(named: "") }
        #expect(try await store.revokeApplication(named: "desktop"))
        #expect(try await !store.revokeApplication(named: "desktop"))
        #expect(try await !store.isActiveApplication(id: id))
        let listed = try await store.applications()
        #expect(listed.map(\.name) == ["desktop"])
        #expect(listed.first?.revokedAt != nil)
    }
}

import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderTestSupport
import Foundation
import GRDB
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderStore

/// Values sealed by the first version of the store, kept as bytes. Everything bound into a seal (the
/// field names, the format version, the layout of the associated data) must keep opening them: a change
/// that derives a name from a column or a Codable key instead fails here.
@Suite("The sealed format is fixed: values sealed by earlier versions still open")
struct SealedKeyCodecTests {
    /// Bytes 1…32, never a real key.
    let masterKey = try! MasterKey(bytes: Data((1...32).map { UInt8($0) }))
    let user = "auth0|sealed"
    /// `sk-sealed-by-v1-0123456789abcdef` for `auth0|sealed`, `open_ai`, `api_key`, sealed at 253ba33.
    let sealedKey = Data(base64Encoded: "Af3r06yn77fvQ7LezIPLk0jBS54sHm20LPPIJjCKjqHkUx1eikt9KESp1I6Ad2PMkEYaEsYZxQdYgMh65s2oslKgq0uY")!
    /// `org-sealed-by-v1` for `auth0|sealed`, `open_ai`, `organization_key`, sealed at 253ba33.
    let sealedOrganization = Data(base64Encoded: "Af3r06yn77fvQrKvp7/K2Yg1x3HDJ9plF+Ya0fow9r3HNHULplT3Y5cJhvGvBrEEJTgFtvo=")!

    @Test("the codec opens values sealed by the first version")
    func opensFirstVersion() throws {
        let codec = SealedKeyCodec(masterKey: masterKey)
        let key = try codec.open(.init(apiKey: sealedKey, organizationKey: sealedOrganization), name: "n", user: user, provider: "open_ai")
        #expect(key == ProviderKey(apiKey: "sk-sealed-by-v1-0123456789abcdef", apiKeyName: "n", organizationKey: "org-sealed-by-v1"))
    }

    @Test("a row holding those bytes opens through the store, and the fields stay bound to their names")
    func opensThroughTheStore() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store.sqlite")
        _ = try SQLiteKeyStore(path: path, masterKey: masterKey)
        let queue = try DatabaseQueue(path: path)
        try await queue.write { [user, sealedKey, sealedOrganization] db in
            try db.execute(sql: "INSERT INTO user_account (user, global_id, created_at) VALUES (?, ?, ?)",
                           arguments: [user, "0b7c6f0e-8a53-4b41-9d2e-4d1f1c0a9b01", Date()])
            try db.execute(sql: """
                INSERT INTO provider_key (user, provider, api_key, organization_key, created_at, updated_at)
                VALUES (?, 'open_ai', ?, ?, ?, ?)
                """, arguments: [user, sealedKey, sealedOrganization, Date(), Date()])
        }
        try queue.close()
        let store = try SQLiteKeyStore(path: path, masterKey: masterKey)
        let key = try #require(try await store.account(for: UserID(trusted: user))?.keys[.openAI])
        #expect(key.apiKey == "sk-sealed-by-v1-0123456789abcdef" && key.organizationKey == "org-sealed-by-v1")

        // Swapped between the two fields, neither opens: each is bound to its own field's name.
        let swapped = SealedKeyCodec(masterKey: masterKey)
        #expect(throws: Fault.self) {
            try swapped.open(.init(apiKey: sealedOrganization, organizationKey: nil), name: nil, user: user, provider: "open_ai")
        }
    }

    @Test("what the codec seals opens again, under the same names")
    func roundTrip() throws {
        let codec = SealedKeyCodec(masterKey: masterKey)
        let key = ProviderKey(apiKey: "sk-round-trip-000000000", apiKeyName: nil, organizationKey: "org-round")
        let sealed = try codec.seal(key, user: "u", provider: "open_ai")
        #expect(try masterKey.open(sealed.apiKey, for: SealContext(user: "u", provider: "open_ai", field: "api_key")) == key.apiKey)
        #expect(try codec.open(sealed, name: nil, user: "u", provider: "open_ai") == key)
    }

    @Test("every migration names the data version it brings the store to, and the last is the product's")
    func dataVersions() async throws {
        #expect(SQLiteKeyStore.migrator.migrations == SQLiteKeyStore.dataVersions.map(\.migration))
        #expect(SQLiteKeyStore.dataVersions.map(\.dataVersion) == Array(1...DataVersion.current))
        #expect(try await SQLiteKeyStore.inMemory().dataVersion() == DataVersion.current)
    }
}

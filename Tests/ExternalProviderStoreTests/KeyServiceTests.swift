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

@Suite("The write use case on a real store: check, write, and start over when the key changed meanwhile")
struct KeyServiceTests {
    let user = UserID(trusted: "auth0|ada")
    let checkedAt = Date(timeIntervalSince1970: 1_800_000_000)

    func newKey(_ apiKey: String) throws -> KeyOperation {
        .create(try NewKey(provider: .openAI, apiKey: apiKey, apiKeyName: nil, organizationKey: nil))
    }

    func replaceKey(_ apiKey: String) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: nil, organizationKey: nil))
    }

    @Test("a key replaced during the check is checked again, and the write stores what was checked")
    func retriesOnce() async throws {
        let store = try SQLiteKeyStore.inMemory()
        _ = try await store.perform(newKey("sk-first-000000000000"), for: user)
        let verifier = FakeVerifier(meanwhile: { [user] attempt in
            if attempt == 1 { _ = try await store.perform(try replaceKey("sk-replaced-meanwhile-0"), for: user) }
        })
        let service = KeyService(store: store, verifier: verifier, now: { [checkedAt] in checkedAt })
        let organization = KeyOperation.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: nil, organizationKey: "org-new"))
        let after = try await service.perform(organization, for: user, origin: .commandLine)

        #expect(verifier.asked.map(\.apiKey) == ["sk-first-000000000000", "sk-replaced-meanwhile-0"])
        #expect(after.keys[.openAI] == ProviderKey(apiKey: "sk-replaced-meanwhile-0", organizationKey: "org-new"))
        #expect(try await store.account(for: user) == after)
        #expect(try await store.storedKeys().first?.health == .valid(checkedAt: checkedAt))
    }

    @Test("a key that keeps changing gives up after three checks with 'changed during check', storing nothing of its own")
    func givesUp() async throws {
        let store = try SQLiteKeyStore.inMemory()
        _ = try await store.perform(newKey("sk-first-000000000000"), for: user)
        let verifier = FakeVerifier(meanwhile: { [user] attempt in
            _ = try await store.perform(try replaceKey("sk-meanwhile-\(attempt)-00000000"), for: user)
        })
        let service = KeyService(store: store, verifier: verifier)
        await #expect(throws: KeyWriteRejection.changedDuringCheck) {
            try await service.perform(.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: nil, organizationKey: "org-new")), for: user, origin: .commandLine)
        }
        #expect(verifier.asked.count == KeyService.verificationAttempts)
        #expect(try await store.account(for: user)?.keys[.openAI] == ProviderKey(apiKey: "sk-meanwhile-3-00000000"))
    }

    @Test("a request the state refuses (409, 404) is answered without asking the provider")
    func conflictsAskNobody() async throws {
        let store = try SQLiteKeyStore.inMemory()
        _ = try await store.perform(newKey("sk-first-000000000000"), for: user)
        let verifier = FakeVerifier()
        let service = KeyService(store: store, verifier: verifier)
        await #expect(throws: KeyWriteRejection.conflict(.keyExists(user, .openAI))) {
            try await service.perform(try newKey("sk-second-00000000000"), for: user, origin: .commandLine)
        }
        let stranger = UserID(trusted: "stranger")
        await #expect(throws: KeyWriteRejection.conflict(.unknownUser(stranger))) {
            try await service.perform(try replaceKey("sk-second-00000000000"), for: stranger, origin: .commandLine)
        }
        #expect(verifier.asked.isEmpty)
    }

    @Test("verified_at is when the provider accepted the pair; a new name keeps it, a new pair moves it")
    func verifiedAt() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let clock = Mutex(checkedAt)
        let service = KeyService(store: store, verifier: FakeVerifier(), now: { clock.withLock { $0 } })
        func verifiedAt() async throws -> Date? {
            try await store.writer.read { db in try Date.fetchOne(db, sql: "SELECT verified_at FROM provider_key") }
        }
        _ = try await service.perform(newKey("sk-first-000000000000"), for: user, origin: .commandLine)
        #expect(try await verifiedAt() == checkedAt)
        clock.withLock { $0 = checkedAt + 60 }
        _ = try await service.perform(.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: "renamed", organizationKey: nil)), for: user, origin: .commandLine)
        #expect(try await verifiedAt() == checkedAt)
        _ = try await service.perform(try replaceKey("sk-second-00000000000"), for: user, origin: .commandLine)
        #expect(try await verifiedAt() == checkedAt + 60)
        _ = try await store.perform(try replaceKey("sk-unchecked-000000000"), for: user)
        #expect(try await verifiedAt() == nil)
    }
}

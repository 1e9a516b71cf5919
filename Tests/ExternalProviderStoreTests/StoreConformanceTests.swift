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

/// What every store must do, run against each. A store offers primitives; the rules sit above them.
@Suite("Every store keeps the same promises")
struct StoreConformanceTests {
    static let user = UserID(trusted: "auth0|conformance")
    var user: UserID { Self.user }

    func create(_ apiKey: String, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .create(try NewKey(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    func update(apiKey: String? = nil, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    @Test("what a write returned is what a reopened store reads, at the product's data version", arguments: StoreKind.available)
    func survivesReopen(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            let written = try await place.open { store in
                try await store.perform(try create("sk-persisted-0000000000", name: "n", organization: "org-9"), for: Self.user)
            }
            let read = try await place.open { store in try await store.account(for: Self.user) }
            #expect(read == written)
            #expect(written.keys[.openAI] == ProviderKey(apiKey: "sk-persisted-0000000000", apiKeyName: "n", organizationKey: "org-9"))
        }
    }

    @Test("a refused change, and a decision that throws, change nothing; the error comes back as thrown", arguments: StoreKind.available)
    func refusalsChangeNothing(kind: StoreKind) async throws {
        struct Refused: Error, Equatable {}
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let before = try await store.perform(try create("sk-original-000000000", name: "n"), for: Self.user)
                await #expect(throws: KeyWriteRejection.conflict(.keyExists(Self.user, .openAI))) {
                    try await store.perform(try create("sk-other-00000000000"), for: Self.user)
                }
                await #expect(throws: Refused()) {
                    try await store.changeAccount(of: Self.user) { _ in throw Refused() }
                }
                #expect(try await store.account(for: Self.user) == before)
                let stranger = UserID(trusted: "stranger")
                await #expect(throws: KeyWriteRejection.conflict(.unknownUser(stranger))) {
                    try await store.perform(.delete([.openAI]), for: stranger)
                }
                #expect(try await store.account(for: stranger) == nil)
            }
        }
    }

    @Test("delete removes the key and keeps the user and its global id; a no-op update writes nothing", arguments: StoreKind.available)
    func deleteAndNoOp(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let created = try await store.perform(try create("sk-row-000000000000"), for: Self.user)
                let listed = try #require(try await store.storedKeys().first)
                try await Task.sleep(for: .milliseconds(20))
                _ = try await store.perform(try update(apiKey: "sk-row-000000000000"), for: Self.user)
                #expect(try await store.storedKeys().first?.updatedAt == listed.updatedAt)
                let deleted = try await store.perform(.delete([.openAI]), for: Self.user)
                #expect(deleted == UserAccount(user: Self.user, globalID: created.globalID))
                #expect(try await store.account(for: Self.user) == deleted)
                #expect(try await store.storedKeys().isEmpty)
            }
        }
    }

    @Test("a change may make an account with no key yet; it is stored with its global id", arguments: StoreKind.available)
    func accountWithoutKey(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let empty = UserAccount(user: Self.user, globalID: UUID())
                let made = try await store.changeAccount(of: Self.user) { current in
                    #expect(current == nil)
                    return AccountChange(account: empty, healthOfNewCredentials: .unverified, audit: nil)
                }
                #expect(made == empty)
                #expect(try await store.account(for: Self.user) == empty)
                #expect(try await store.auditTrail(AuditQuery()).isEmpty)
            }
        }
    }

    @Test("concurrent read-modify-write changes of one user all land: none is lost", arguments: StoreKind.available)
    func noLostUpdates(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                _ = try await store.perform(try create("sk-counter-0000000000", name: ""), for: Self.user)
                let writers = 24
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<writers {
                        group.addTask {
                            _ = try await store.changeAccount(of: Self.user) { current in
                                var account = try #require(current)
                                var key = try #require(account.keys[.openAI])
                                key.apiKeyName = (key.apiKeyName ?? "") + "+"
                                account.keys[.openAI] = key
                                return AccountChange(account: account, healthOfNewCredentials: .unverified, audit: nil)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(try await store.account(for: Self.user)?.keys[.openAI]?.apiKeyName == String(repeating: "+", count: writers))
            }
        }
    }

    @Test("health: set by a write's check, recorded only for the same pair, listed masked, due oldest first, put off after no answer", arguments: StoreKind.available)
    func health(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let at = Date(timeIntervalSince1970: 1_800_000_000)
                let checked = KeyService(store: store, verifier: FakeVerifier(), now: { at })
                _ = try await checked.perform(try create("sk-checked-0000000000", organization: "org-h"), for: Self.user, origin: .commandLine)
                let other = UserID(trusted: "auth0|unchecked")
                _ = try await store.perform(try create("sk-unchecked-00000000"), for: other)

                let listed = try await store.storedKeys()
                #expect(listed.map(\.user) == [Self.user, other])
                #expect(listed.map(\.health) == [.valid(checkedAt: at), .unverified])
                #expect(listed.first?.maskedKey == "sk-...0000" && listed.first?.organization == "org-h")

                let due = try await store.keysDueForCheck(of: .openAI, checkedBefore: at + 1, at: at, limit: 10)
                #expect(due.map(\.0) == [other, Self.user])
                #expect(try await store.keysDueForCheck(of: .openAI, checkedBefore: at, at: at, limit: 10).map(\.0) == [other])

                // A check put off leaves the key out until then, and only for the pair it was said of.
                let unchecked = ProviderCredentials(provider: .openAI, apiKey: "sk-unchecked-00000000", organization: nil)
                let replaced = ProviderCredentials(provider: .openAI, apiKey: "sk-gone-0000000000000", organization: nil)
                #expect(try await store.deferCheck(of: replaced, for: other, until: at + 60) == false)
                #expect(try await store.deferCheck(of: unchecked, for: other, until: at + 60))
                #expect(try await store.keysDueForCheck(of: .openAI, checkedBefore: at + 1, at: at, limit: 10).map(\.0) == [Self.user])
                #expect(try await store.keysDueForCheck(of: .openAI, checkedBefore: at + 1, at: at + 60, limit: 10).map(\.0) == [other, Self.user])
                // Health recorded for the pair clears the deferral.
                #expect(try await store.recordHealth(.valid(checkedAt: at - 10), of: unchecked, for: other))
                #expect(try await store.keysDueForCheck(of: .openAI, checkedBefore: at + 1, at: at, limit: 10).map(\.0) == [other, Self.user])

                let stale = ProviderCredentials(provider: .openAI, apiKey: "sk-replaced-000000000", organization: "org-h")
                #expect(try await store.recordHealth(.rejected(checkedAt: at, code: "x"), of: stale, for: Self.user) == false)
                let current = ProviderCredentials(provider: .openAI, apiKey: "sk-checked-0000000000", organization: "org-h")
                #expect(try await store.recordHealth(.rejected(checkedAt: at + 5, code: "invalid_api_key"), of: current, for: Self.user))
                #expect(try await store.storedKeys().first?.health == .rejected(checkedAt: at + 5, code: "invalid_api_key"))
            }
        }
    }

    @Test("applications: registered with scopes, names unique, revoked for good, found only by their id", arguments: StoreKind.available)
    func applications(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let id = try await store.registerApplication(named: "bot", scopes: [.keys, .relay], boundUser: "auth0|ada")
                #expect(try await store.activeApplication(id: id) == ApplicationGrant(name: "bot", scopes: [.keys, .relay], boundUser: "auth0|ada"))
                #expect(try await store.activeApplication(id: id + "x") == nil)
                await #expect(throws: ApplicationError.nameTaken("bot")) { try await store.registerApplication(named: "bot") }
                #expect(try await store.applications().map(\.name) == ["bot"])
                #expect(try await store.revokeApplication(named: "bot"))
                #expect(try await store.revokeApplication(named: "bot") == false)
                #expect(try await store.activeApplication(id: id) == nil)
            }
        }
    }

    @Test("a store sealed under one master key refuses another", arguments: StoreKind.available)
    func masterKeyClaim(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in _ = try await store.perform(try create("sk-sealed-0000000000"), for: Self.user) }
            await #expect(throws: Fault.self) {
                try await place.open(masterKey: .generate()) { _ in }
            }
        }
    }
}

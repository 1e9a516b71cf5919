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

/// The audit trail, on every store: one entry per accepted change, in the change's own transaction,
/// naming fields and never holding a value; and a table the database itself keeps append-only.
@Suite("The audit trail, on every store")
struct AuditConformanceTests {
    static let user = UserID(trusted: "auth0|audited")
    static let origin = ChangeOrigin(application: "pieces-desktop", requestID: "req-7")

    static func perform(_ operation: KeyOperation, on store: any KeyStore, verifier: (any KeyVerifier)? = nil, at: Date = Date()) async throws {
        _ = try await KeyService(store: store, verifier: verifier, now: { at }).perform(operation, for: user, origin: origin)
    }

    static func update(apiKey: String? = nil, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    @Test("each accepted change appends one entry with the changed fields' names; a refusal or a no-op appends none", arguments: StoreKind.available)
    func accountChanges(kind: StoreKind) async throws {
        let secret = "sk-audited-secret-0123456789"
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                // An hour ago, to the millisecond (what both stores keep), so that `since` can tell it apart.
                let at = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3600).rounded())
                try await Self.perform(
                    .create(try NewKey(provider: .openAI, apiKey: secret, apiKeyName: "work", organizationKey: nil)), on: store,
                    verifier: FakeVerifier(), at: at)
                // Refused (the key exists), and a no-op: neither is a change.
                await #expect(throws: KeyWriteRejection.self) {
                    try await Self.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-other-000000000", apiKeyName: nil, organizationKey: nil)), on: store)
                }
                try await Self.perform(try Self.update(name: "work"), on: store)
                try await Self.perform(try Self.update(name: "", organization: "org-audited"), on: store)
                try await Self.perform(.delete([.openAI]), on: store)

                let entries = try await store.auditTrail(AuditQuery())
                #expect(entries.map(\.action) == [.create, .update, .delete])
                #expect(entries.map(\.fields) == [[.apiKey, .apiKeyName], [.apiKeyName, .organizationKey], [.apiKey, .organizationKey]])
                #expect(entries.map(\.verification) == ["valid", "unverified", nil])
                #expect(entries.allSatisfy { $0.user == Self.user && $0.application == "pieces-desktop" && $0.requestID == "req-7" })
                #expect(entries.first?.at == at)
                // Nothing in an entry is a value: not the key, nor the name or organization that were set.
                let text = entries.map { "\($0)" }.joined()
                #expect(!text.contains(secret) && !text.contains("org-audited") && !text.contains("\"work\""))

                #expect(try await store.auditTrail(AuditQuery(user: UserID(trusted: "someone-else"))).isEmpty)
                #expect(try await store.auditTrail(AuditQuery(user: Self.user, since: at + 1)).map(\.action) == [.update, .delete])
            }
        }
    }

    @Test("concurrent writers append exactly one entry per write that landed", arguments: StoreKind.available)
    func concurrentWrites(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                try await Self.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-race-000000000000", apiKeyName: nil, organizationKey: nil)), on: store)
                let writers = 16
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<writers {
                        group.addTask { try await Self.perform(try Self.update(name: "name-\(index)"), on: store) }
                    }
                    try await group.waitForAll()
                }
                let entries = try await store.auditTrail(AuditQuery(user: Self.user))
                #expect(entries.map(\.action) == [.create] + Array(repeating: .update, count: writers))
            }
        }
    }

    @Test("applications made and revoked, and a master key rotated, are entries too", arguments: StoreKind.available)
    func storeChanges(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                _ = try await store.registerApplication(named: "bot", scopes: [.relay], boundUser: "auth0|ada")
                #expect(try await store.revokeApplication(named: "bot"))
                #expect(try await store.revokeApplication(named: "bot") == false)
                switch store {
                case let sqlite as SQLiteKeyStore: _ = try await sqlite.rotateMasterKey(to: .generate())
                case let postgres as PostgresKeyStore: _ = try await postgres.rotateMasterKey(to: .generate())
                default: Issue.record("unknown store")
                }
                let entries = try await store.auditTrail(AuditQuery())
                #expect(entries.map(\.action) == [.appsCreate, .appsRevoke, .rotateMasterKey])
                #expect(entries.map(\.application) == ["bot", "bot", nil])
                #expect(entries.first?.user == UserID(trusted: "auth0|ada") && entries.first?.fields == [.boundUser, .scopes])
            }
        }
    }

    @Test("the database refuses to edit or delete an entry", arguments: StoreKind.available)
    func appendOnly(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                try await Self.perform(.create(try NewKey(provider: .openAI, apiKey: "sk-kept-0000000000000", apiKeyName: nil, organizationKey: nil)), on: store)
            }
            let edits = ["UPDATE audit_event SET action = 'update'", "DELETE FROM audit_event"]
            switch kind {
            case .sqlite:
                let sqlite = try await place.open { $0 as! SQLiteKeyStore }
                for edit in edits {
                    #expect(throws: DatabaseError.self) { try sqlite.writer.write { db in try db.execute(sql: edit) } }
                }
            case .postgres:
                try await place.withPostgresClient { client in
                    for edit in edits + ["TRUNCATE audit_event"] {
                        await #expect(throws: PSQLError.self) { try await client.query(PostgresQuery(unsafeSQL: edit)) }
                    }
                }
            }
            let kept = try await place.open { store in try await store.auditTrail(AuditQuery()).map(\.action) }
            #expect(kept == [.create])
        }
    }

    @Test("keys are counted by health without opening one", arguments: StoreKind.available)
    func countsByHealth(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                #expect(try await store.keyCounts().isEmpty)
                try await Self.perform(
                    .create(try NewKey(provider: .openAI, apiKey: "sk-valid-000000000000", apiKeyName: nil, organizationKey: nil)), on: store,
                    verifier: FakeVerifier())
                _ = try await store.perform(
                    .create(try NewKey(provider: .openAI, apiKey: "sk-unknown-0000000000", apiKeyName: nil, organizationKey: nil)),
                    for: UserID(trusted: "other"))
                #expect(try await store.keyCounts() == [KeyCount(provider: .openAI, health: .valid): 1, KeyCount(provider: .openAI, health: .unverified): 1])
            }
        }
    }
}

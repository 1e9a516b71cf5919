import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderPostgres

/// Writes on PostgreSQL run in batches of many users, two batches at a time per instance, each row
/// version-guarded; a row that loses its race goes on alone. These drive every path at once.
@Suite("PostgreSQL: writes batched across users and instances", .enabled(if: StoreKind.testDatabaseURL != nil, "needs the test command's cluster"))
struct PostgresBatchedWriteTests {
    static func create(_ index: Int) throws -> KeyOperation {
        .create(try NewKey(provider: .openAI, apiKey: "sk-batched-\(String(format: "%010d", index))", apiKeyName: "", organizationKey: nil))
    }

    /// Appends "+" to the key's name: a read-modify-write whose every landing shows in the final name.
    static func appendPlus(_ current: UserAccount?) throws -> AccountChange {
        var account = try #require(current)
        var key = try #require(account.keys[.openAI])
        key.apiKeyName = (key.apiKeyName ?? "") + "+"
        account.keys[.openAI] = key
        return AccountChange(account: account, healthOfNewCredentials: .unverified, audit: nil)
    }

    @Test("two instances writing users they share and users of their own: every change lands once, and each refusal reaches only its caller")
    func twoInstances() async throws {
        let shared = (0..<4).map { UserID(trusted: "auth0|shared-\($0)") }
        let rounds = 12
        let ownUsers = 24
        try await StoreUnderTest.with(.postgres) { place in
            try await place.open { first in
                try await place.open { second in
                    for (index, user) in shared.enumerated() { _ = try await first.perform(try Self.create(index), for: user) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (instance, store) in [first, second].enumerated() {
                            for user in shared {
                                for _ in 0..<rounds {
                                    group.addTask { _ = try await store.changeAccount(of: user, Self.appendPlus) }
                                }
                            }
                            for own in 0..<ownUsers {
                                group.addTask {
                                    let user = UserID(trusted: "auth0|own-\(instance)-\(own)")
                                    _ = try await store.perform(try Self.create(1000 * (instance + 1) + own), for: user)
                                }
                            }
                            // Refused in the middle of the others' batches: a key that exists, a user that does not.
                            group.addTask {
                                await #expect(throws: KeyWriteRejection.conflict(.keyExists(shared[0], .openAI))) {
                                    try await store.perform(try Self.create(99), for: shared[0])
                                }
                            }
                            group.addTask {
                                let stranger = UserID(trusted: "auth0|stranger-\(instance)")
                                await #expect(throws: KeyWriteRejection.conflict(.unknownUser(stranger))) {
                                    try await store.perform(.delete([.openAI]), for: stranger)
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    for user in shared {
                        #expect(try await second.account(for: user)?.keys[.openAI]?.apiKeyName == String(repeating: "+", count: 2 * rounds))
                    }
                    for instance in 0..<2 {
                        for own in 0..<ownUsers {
                            let user = UserID(trusted: "auth0|own-\(instance)-\(own)")
                            let apiKey = try await first.account(for: user)?.keys[.openAI]?.apiKey
                            #expect(apiKey == "sk-batched-\(String(format: "%010d", 1000 * (instance + 1) + own))")
                        }
                    }
                    #expect(try await first.account(for: UserID(trusted: "auth0|stranger-0")) == nil)
                }
            }
        }
    }
}

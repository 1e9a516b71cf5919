import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderPostgres

@Suite("PostgreSQL: instances that start together", .enabled(if: StoreKind.testDatabaseURL != nil, "needs the test command's cluster"))
struct PostgresStartTests {
    @Test("eight instances preparing one new database at once all open, and the master key is recorded once")
    func concurrentFirstStarts() async throws {
        try await StoreUnderTest.with(.postgres) { place in
            try await place.withPostgresClient { client in
                _ = try await PostgresKeyStore.migrate(client: client, logger: StoreUnderTest.logger)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            _ = try await PostgresKeyStore.open(client: client, masterKey: place.masterKey, migrate: false, logger: StoreUnderTest.logger)
                        }
                    }
                    try await group.waitForAll()
                }
                let recorded = try await client.query("SELECT count(*) FROM store_meta WHERE name = 'master_key_id'").decode(Int.self)
                    .first { _ in true }
                #expect(recorded == 1)
            }
        }
    }
}

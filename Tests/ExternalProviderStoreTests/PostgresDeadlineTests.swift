import ExternalProviderCore
import Foundation
import Testing

@testable import ExternalProviderPostgres

/// A PostgreSQL operation answers by its deadline even when what it waits on ignores cancellation, as a
/// query on a connection the database dropped can.
@Suite("PostgreSQL: an operation's deadline")
struct PostgresDeadlineTests {
    @Test("an operation stuck past its deadline is answered 'unavailable' at the deadline, not when it ends")
    func stuckOperation() async throws {
        let started = ContinuousClock.now
        await #expect(throws: StoreUnavailable.self) {
            try await PostgresAvailability.answering(within: .milliseconds(100)) {
                // Deaf to cancellation for 5 s, as a stuck query is.
                let until = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(20)) }
                return 1
            }
        }
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test("an operation that ends in time gives its result or its own error")
    func inTime() async throws {
        #expect(try await PostgresAvailability.answering(within: .seconds(5)) { 42 } == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await PostgresAvailability.answering(within: .seconds(5)) { () async throws -> Int in throw Refused() }
        }
    }
}

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
                // Deaf to cancellation for 30 s, as a stuck query is.
                let until = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(20)) }
                return 1
            }
        }
        // Far below the 30 s the body takes, and far above the deadline: with the whole suite running in
        // parallel on 2 cores, answering a 100 ms deadline was once seen to take 2.3 s.
        #expect(ContinuousClock.now - started < .seconds(15))
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

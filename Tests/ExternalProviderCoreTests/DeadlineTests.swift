import ExternalProviderCore
import Testing

/// An operation is answered by its deadline even when what it waits on ignores cancellation, as a query
/// on a connection the database dropped can. The PostgreSQL store and `/ready` both rely on it.
@Suite("A deadline answers its caller, whatever the operation does with cancellation")
struct DeadlineTests {
    struct Expired: Error {}

    @Test("an operation stuck past its deadline is answered with the deadline's error at the deadline, not when it ends")
    func stuckOperation() async throws {
        let started = ContinuousClock.now
        await #expect(throws: Expired.self) {
            try await Deadline.answering(within: .milliseconds(100), orThrowing: { Expired() }) {
                // Deaf to cancellation for 30 s, as a stuck query is: an unstructured task is not cancelled
                // with the one awaiting it. (A loop of sleeps would spin once cancelled, and hold one of
                // the two cores' threads for the 30 s.)
                await Task { try? await Task.sleep(for: .seconds(30)) }.value
                return 1
            }
        }
        // Far below the 30 s the body takes; loose, since the whole suite runs in parallel on 2 cores.
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test("an operation that ends in time gives its result or its own error")
    func inTime() async throws {
        #expect(try await Deadline.answering(within: .seconds(5), orThrowing: { Expired() }) { 42 } == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await Deadline.answering(within: .seconds(5), orThrowing: { Expired() }) { () async throws -> Int in throw Refused() }
        }
    }

    @Test("a cancelled caller cancels the operation")
    func cancelled() async throws {
        let operation = Task {
            try await Deadline.answering(within: .seconds(60), orThrowing: { Expired() }) {
                try await Task.sleep(for: .seconds(60))
                return 1
            }
        }
        operation.cancel()
        await #expect(throws: CancellationError.self) { try await operation.value }
    }
}

import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderPostgres

/// The batcher on its own, with a batch run that records what it was given: PostgreSQL's first attempts
/// rely on it never putting one user in two running batches, and on every caller hearing its own outcome.
@Suite("Writes batched for a shared database")
struct WriteBatcherTests {
    /// What the runs saw: the batches in the order they started, and any overlap of users or count.
    final class Recorder: Sendable {
        struct Seen {
            var batches: [[String]] = []
            /// Each batch's items, as "user:item".
            var items: [[String]] = []
            var usersRunning: [String] = []
            var batchesRunning = 0
            var mostBatchesRunning = 0
            var overlaps: [String] = []
        }

        let seen = Mutex(Seen())

        func run(_ batch: [(user: String, item: Int)], pause: Duration) async -> [String] {
            seen.withLock { seen in
                seen.batches.append(batch.map(\.user))
                seen.items.append(batch.map { "\($0.user):\($0.item)" })
                seen.overlaps += batch.map(\.user).filter(seen.usersRunning.contains)
                seen.usersRunning += batch.map(\.user)
                seen.batchesRunning += 1
                seen.mostBatchesRunning = max(seen.mostBatchesRunning, seen.batchesRunning)
            }
            try? await Task.sleep(for: pause)
            seen.withLock { seen in
                for (user, _) in batch { seen.usersRunning.remove(at: seen.usersRunning.firstIndex(of: user)!) }
                seen.batchesRunning -= 1
            }
            return batch.map { "\($0.user):\($0.item)" }
        }
    }

    /// Polls, since a queued write has no other sign; bounded so that a broken batcher fails, not hangs.
    static func waitUntil(_ condition: () -> Bool) async {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(2)) }
    }

    @Test("every caller hears its own outcome; a user is never in two running batches; at most two batches run at once")
    func outcomesAndExclusion() async throws {
        let batcher = WriteBatcher<Int, String>(concurrentBatches: 2, batchLimit: 8)
        let recorder = Recorder()
        let outcomes = await withTaskGroup(of: (Int, String).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let user = "user-\(index % 5)"  // few users, so many writes wait for their user's batch
                    return (index, await batcher.submit(index, of: user) { batch in await recorder.run(batch, pause: .milliseconds(1)) })
                }
            }
            var outcomes: [Int: String] = [:]
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
        #expect(outcomes.count == 200)
        for (index, outcome) in outcomes { #expect(outcome == "user-\(index % 5):\(index)") }
        recorder.seen.withLock { seen in
            #expect(seen.overlaps.isEmpty)
            #expect(seen.mostBatchesRunning <= 2)
            #expect(seen.batches.allSatisfy { $0.count <= 8 })
            #expect(seen.batches.map(\.count).reduce(0, +) == 200)
        }
    }

    @Test("writes that arrive while a batch runs go together into the next one")
    func waitingWritesAreCombined() async throws {
        let batcher = WriteBatcher<Int, String>(concurrentBatches: 1, batchLimit: 64)
        let recorder = Recorder()
        let gate = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Void>.makeStream()
        await withTaskGroup(of: String.self) { group in
            group.addTask {
                await batcher.submit(0, of: "first") { batch in
                    started.continuation.yield()
                    // The first batch waits until every other write is queued behind it.
                    for await _ in gate.stream { break }
                    return await recorder.run(batch, pause: .zero)
                }
            }
            // Nothing else is sent until the first write's batch is under way.
            for await _ in started.stream { break }
            for index in 1...20 {
                group.addTask { await batcher.submit(index, of: "user-\(index)") { batch in await recorder.run(batch, pause: .zero) } }
            }
            await Self.waitUntil { batcher.queuedCount == 20 }
            gate.continuation.yield()
            for await _ in group {}
        }
        recorder.seen.withLock { seen in
            #expect(seen.batches.count == 2)
            #expect(seen.batches.first == ["first"])
            #expect(Set(seen.batches.last ?? []) == Set((1...20).map { "user-\($0)" }))
        }
    }

    @Test("a busy user's writes that arrive while its batch runs go together into the next one, in the order they came")
    func busyUsersWritesAreCombined() async throws {
        let batcher = WriteBatcher<Int, String>(concurrentBatches: 2, batchLimit: 64)
        let recorder = Recorder()
        let gate = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Void>.makeStream()
        await withTaskGroup(of: String.self) { group in
            group.addTask {
                await batcher.submit(0, of: "busy") { batch in
                    started.continuation.yield()
                    for await _ in gate.stream { break }
                    return await recorder.run(batch, pause: .zero)
                }
            }
            for await _ in started.stream { break }
            for index in 1...10 {
                group.addTask { await batcher.submit(index, of: "busy") { batch in await recorder.run(batch, pause: .zero) } }
                // Each queued before the next is sent, so their order is known.
                await Self.waitUntil { batcher.queuedCount == index }
            }
            gate.continuation.yield()
            for await _ in group {}
        }
        recorder.seen.withLock { seen in
            #expect(seen.items == [["busy:0"], (1...10).map { "busy:\($0)" }])
            #expect(seen.overlaps.isEmpty)
        }
    }
}

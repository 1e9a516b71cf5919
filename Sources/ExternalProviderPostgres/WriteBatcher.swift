import Synchronization

/// Group commit for a shared database: writes that arrive while earlier ones are under way wait, then run
/// together, so a burst of writers shares one read, one write statement and one commit instead of
/// paying each of them its own. No background task: the first caller of a batch runs it, in its own
/// task, and hands the next batch to the first caller of that one. At most `concurrentBatches` run at
/// once, and one user is in at most one running batch, so a batch never races itself or its siblings
/// of this process for a user. A batch takes every write of its users that is queued, in arrival order,
/// so that one busy user's writes share a commit too.
final class WriteBatcher<Item: Sendable, Outcome: Sendable>: Sendable {
    typealias Run = @Sendable ([(user: String, item: Item)]) async -> [Outcome]

    private enum Turn {
        case done(Outcome)
        /// The caller runs this batch, itself first in it.
        case lead([Waiter])
    }

    private struct Waiter {
        let user: String
        let item: Item
        let continuation: CheckedContinuation<Turn, Never>
    }

    private struct State {
        var queue: [Waiter] = []
        var running = 0
        var usersInRunningBatches: Set<String> = []

        /// The next batch: queued writes in arrival order, none of a user in a running batch, at most
        /// `limit`. The others stay queued in their order.
        mutating func takeBatch(limit: Int) -> [Waiter] {
            var batch: [Waiter] = []
            var batchUsers: Set<String> = []
            var left: [Waiter] = []
            for waiter in queue {
                if batch.count < limit, batchUsers.contains(waiter.user) || !usersInRunningBatches.contains(waiter.user) {
                    batchUsers.insert(waiter.user)
                    batch.append(waiter)
                } else {
                    left.append(waiter)
                }
            }
            queue = left
            usersInRunningBatches.formUnion(batchUsers)
            return batch
        }
    }

    private let state = Mutex(State())
    private let concurrentBatches: Int
    private let batchLimit: Int

    /// Writes waiting for a batch, for tests that must know a write has queued before they go on.
    var queuedCount: Int { state.withLock { $0.queue.count } }

    init(concurrentBatches: Int, batchLimit: Int) {
        self.concurrentBatches = concurrentBatches
        self.batchLimit = batchLimit
    }

    /// `item`'s outcome, once the batch it joined has run. `run` runs a batch, in which a user's items are
    /// in the order they were submitted, and returns one outcome per item, in order; every caller passes
    /// the same one, and whichever caller leads a batch runs it.
    func submit(_ item: Item, of user: String, run: @escaping Run) async -> Outcome {
        let turn = await withCheckedContinuation { continuation in
            let batch = state.withLock { state -> [Waiter] in
                state.queue.append(Waiter(user: user, item: item, continuation: continuation))
                guard state.running < concurrentBatches else { return [] }
                let batch = state.takeBatch(limit: batchLimit)
                if !batch.isEmpty { state.running += 1 }
                return batch
            }
            if let leader = batch.first { leader.continuation.resume(returning: .lead(batch)) }
        }
        switch turn {
        case .done(let outcome):
            return outcome
        case .lead(let batch):
            // In a task of its own, which the leader's cancellation (its client gone) does not reach: the
            // batch holds other callers' writes too.
            let items = batch.map { ($0.user, $0.item) }
            let outcomes = await Task { await run(items) }.value
            precondition(outcomes.count == batch.count, "a batch's run returned \(outcomes.count) outcomes for \(batch.count) writes")
            let next = state.withLock { state -> [Waiter] in
                for waiter in batch { state.usersInRunningBatches.remove(waiter.user) }
                let next = state.takeBatch(limit: batchLimit)
                if next.isEmpty { state.running -= 1 }
                return next
            }
            if let leader = next.first { leader.continuation.resume(returning: .lead(next)) }
            for (waiter, outcome) in zip(batch, outcomes).dropFirst() { waiter.continuation.resume(returning: .done(outcome)) }
            return outcomes[0]
        }
    }
}

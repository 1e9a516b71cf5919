import ExternalProviderCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Writes the usage ledger off the answers' path: `record` only queues an entry, and this service writes
/// the queue to the store in batches, at least every `interval`, so that an entry reaches the store
/// within `interval` plus one write of the answer's end. While the store cannot take them, entries wait;
/// past `capacity` new ones are dropped, counted and logged, and no request ever waits for the ledger.
///
/// Each entry gets a sequence number, and `committedThrough` says up to which number every entry is in
/// the store: budgets (`SpendTracker`) count the store's sums and, on top, what it may not hold yet.
final class UsageRecorder: Service, Sendable {
    static let interval: Duration = .milliseconds(250)
    /// A batch at most this long; a longer queue is written in several.
    static let batchLimit = 2000

    private struct Queued {
        let sequence: UInt64
        let entry: UsageEntry
    }

    private struct State {
        var queue: [Queued] = []
        var nextSequence: UInt64 = 1
        var committedThrough: UInt64 = 0
        /// Dropped since the last log line about it.
        var droppedUnreported = 0
        var storeFailing = false
    }

    private let ledger: any UsageLedger
    let capacity: Int
    private let metrics: ServerMetrics?
    private let logger: Logger
    private let state = Mutex(State())
    /// Told of every budgeted entry with tokens, so budgets see it before the store does.
    private let tracker: SpendTracker

    init(ledger: any UsageLedger, capacity: Int, metrics: ServerMetrics?, logger: Logger) {
        self.ledger = ledger
        self.capacity = capacity
        self.tracker = SpendTracker(ledger: ledger)
        self.metrics = metrics
        self.logger = logger
    }

    /// Queues `entry`, or drops it if the queue is full. Never waits. `budgeted`: its application has a
    /// token budget, which must see the entry before the store has it.
    func record(_ entry: UsageEntry, budgeted: Bool) {
        metrics?.used(entry.tokens, provider: entry.provider)
        let sequence: UInt64? = state.withLock { state in
            guard state.queue.count < capacity else {
                state.droppedUnreported += 1
                return nil
            }
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.queue.append(Queued(sequence: sequence, entry: entry))
            return sequence
        }
        if sequence == nil { metrics?.usageDropped() }
        if budgeted, entry.tokens.total > 0 {
            tracker.spent(entry.tokens.total, by: Spender(application: entry.application, user: entry.user), at: entry.at, sequence: sequence)
        }
    }

    /// Every entry numbered up to this is in the store.
    var committedThrough: UInt64 { state.withLock { $0.committedThrough } }

    /// The tokens `spender` spent since each of `starts`: the store's sums and what it does not hold yet.
    func spending(of spender: Spender, since starts: [Date]) async throws -> [Int] {
        try await tracker.spending(of: spender, since: starts) { [weak self] in self?.committedThrough ?? 0 }
    }

    /// Entries waiting for the store.
    var queued: Int { state.withLock { $0.queue.count } }

    func run() async throws {
        await Periodic.run(every: Self.interval) { await flush() }
        // Shutting down: what is queued gets one more chance.
        await flush()
    }

    /// Writes what is queued, a batch at a time, until the queue is empty or the store fails.
    func flush() async {
        reportDrops()
        tracker.forgetIdle(committedThrough: committedThrough)
        while true {
            let batch = state.withLock { Array($0.queue.prefix(Self.batchLimit)) }
            guard let last = batch.last else { return }
            do {
                try await ledger.appendUsage(batch.map(\.entry))
            } catch {
                let first = state.withLock { state in
                    defer { state.storeFailing = true }
                    return !state.storeFailing
                }
                if first {
                    logger.error(
                        "the usage ledger cannot be written; entries wait in memory", metadata: ["error": "\(error)", "queued": "\(queued)"])
                }
                return
            }
            let recovered = state.withLock { state in
                state.queue.removeFirst(batch.count)
                state.committedThrough = last.sequence
                defer { state.storeFailing = false }
                return state.storeFailing
            }
            if recovered { logger.notice("the usage ledger is written again", metadata: ["queued": "\(queued)"]) }
        }
    }

    /// One line for the entries dropped since the last: never one per entry, which a flood would repeat.
    private func reportDrops() {
        let dropped = state.withLock { state in
            defer { state.droppedUnreported = 0 }
            return state.droppedUnreported
        }
        guard dropped > 0 else { return }
        logger.error(
            "usage ledger entries were dropped: the store could not take them and the queue was full",
            metadata: ["dropped": "\(dropped)", "queue.capacity": "\(capacity)"])
    }
}

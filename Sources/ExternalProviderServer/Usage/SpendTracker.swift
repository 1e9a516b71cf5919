import ExternalProviderCore
import Foundation
import Synchronization

/// What a spender has spent in a budget's window: the store's sum, read at most `freshness` ago, plus
/// what this instance recorded that the sum may not hold. So a budget counts every answer this instance
/// saw end, at once, and every answer another instance saw end, within its ledger interval and
/// `freshness`: under a second.
///
/// The sum's query starts after reading how far the ledger is committed (`UsageRecorder
/// .committedThrough`): entries up to there are in the sum; later ones, and dropped ones, which the store
/// never gets, are added from here. An entry committed while the query runs may be counted twice until the
/// next read, never missed.
final class SpendTracker: Sendable {
    static let freshness: Duration = .milliseconds(500)
    /// Spenders not asked about for this long are forgotten (but for dropped entries, which only this
    /// instance knows of).
    static let idleLifetime: Duration = .seconds(120)

    /// What one spender spent that the last sum may not hold.
    private struct Local {
        let sequence: UInt64?
        let at: Date
        let tokens: Int
    }

    private struct Sum {
        /// The windows' starts the sum was read for, with what it found.
        let tokens: [Date: Int]
        /// Entries numbered up to this are in `tokens`.
        let horizon: UInt64
        let readAt: ContinuousClock.Instant
    }

    private struct Tally {
        var sum: Sum?
        var local: [Local] = []
        var lastAsked: ContinuousClock.Instant
        /// The read of the sum under way, which every request of this spender shares.
        var refreshing: Task<Sum, any Error>?
    }

    private let ledger: any UsageLedger
    private let tallies = Mutex<[Spender: Tally]>([:])

    init(ledger: any UsageLedger) {
        self.ledger = ledger
    }

    /// An answer `spender`, which has a budget, used `tokens` in; `sequence`: its ledger entry's number,
    /// `nil` if it was dropped.
    func spent(_ tokens: Int, by spender: Spender, at: Date, sequence: UInt64?) {
        let now = ContinuousClock.now
        tallies.withLock { tallies in
            tallies[spender, default: Tally(lastAsked: now)].local.append(Local(sequence: sequence, at: at, tokens: tokens))
        }
    }

    /// The tokens `spender` spent since each of `starts`, in that order; `committedThrough`: how far the
    /// ledger is in the store. The sum is read again once it is older than `freshness`, by one read that
    /// every request of the spender shares; while it runs, the sum before it serves, if under a second old.
    func spending(of spender: Spender, since starts: [Date], committedThrough: @escaping @Sendable () -> UInt64) async throws -> [Int] {
        // A shared read made for other windows (a policy just changed, a day just begun) is read again.
        while true {
            if let totals = try await spendingOnce(of: spender, since: starts, committedThrough: committedThrough) { return totals }
        }
    }

    private func spendingOnce(
        of spender: Spender, since starts: [Date], committedThrough: @escaping @Sendable () -> UInt64
    ) async throws -> [Int]? {
        enum Step {
            case counted([Int])
            case await(Task<Sum, any Error>)
        }
        let now = ContinuousClock.now
        let step: Step = tallies.withLock { tallies in
            var tally = tallies[spender] ?? Tally(lastAsked: now)
            tally.lastAsked = now
            defer { tallies[spender] = tally }
            if let sum = tally.sum, starts.allSatisfy({ sum.tokens[$0] != nil }) {
                let age = now - sum.readAt
                if age < Self.freshness || (tally.refreshing != nil && age < .seconds(1)) {
                    return .counted(Self.total(sum, tally.local, since: starts))
                }
            }
            if let refreshing = tally.refreshing { return .await(refreshing) }
            let refreshing = Task { [ledger] in
                let horizon = committedThrough()
                let read = try await ledger.tokensSpent(application: spender.application.value, user: spender.user, since: starts)
                return Sum(tokens: Dictionary(zip(starts, read), uniquingKeysWith: max), horizon: horizon, readAt: now)
            }
            tally.refreshing = refreshing
            return .await(refreshing)
        }
        let refreshing: Task<Sum, any Error>
        switch step {
        case .counted(let totals): return totals
        case .await(let task): refreshing = task
        }
        let result = await refreshing.result
        return try tallies.withLock { tallies in
            var tally = tallies[spender] ?? Tally(lastAsked: now)
            if tally.refreshing == refreshing { tally.refreshing = nil }
            defer { tallies[spender] = tally }
            let sum = try result.get()
            // A read that began earlier than the one kept is older: keep the newer.
            if tally.sum.map({ $0.horizon <= sum.horizon && $0.readAt <= sum.readAt }) ?? true {
                tally.sum = sum
                tally.local.removeAll { local in local.sequence.map { $0 <= sum.horizon } ?? false }
            }
            guard starts.allSatisfy({ sum.tokens[$0] != nil }) else { return nil }
            return Self.total(sum, tally.local, since: starts)
        }
    }

    private static func total(_ sum: Sum, _ local: [Local], since starts: [Date]) -> [Int] {
        starts.map { start in
            (sum.tokens[start] ?? 0) + local.reduce(0) { total, entry in
                let counted = entry.at >= start && (entry.sequence.map { $0 > sum.horizon } ?? true)
                return total + (counted ? entry.tokens : 0)
            }
        }
    }

    /// Forgets spenders nobody asked about lately, but not the entries the store never got.
    func forgetIdle(committedThrough committed: UInt64) {
        let now = ContinuousClock.now
        let monthStart = BudgetWindow.month.start(of: Date())
        tallies.withLock { tallies in
            for (spender, var tally) in tallies where now - tally.lastAsked > Self.idleLifetime {
                tally.local.removeAll { local in local.sequence.map { $0 <= committed } ?? (local.at < monthStart) }
                if tally.local.isEmpty {
                    tallies[spender] = nil
                } else {
                    tally.sum = nil
                    tallies[spender] = tally
                }
            }
        }
    }
}

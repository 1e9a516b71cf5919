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
    /// ledger is in the store.
    func spending(of spender: Spender, since starts: [Date], committedThrough: () -> UInt64) async throws -> [Int] {
        let now = ContinuousClock.now
        let fresh: [Int]? = tallies.withLock { tallies in
            var tally = tallies[spender] ?? Tally(lastAsked: now)
            tally.lastAsked = now
            defer { tallies[spender] = tally }
            guard let sum = tally.sum, now - sum.readAt < Self.freshness, starts.allSatisfy({ sum.tokens[$0] != nil }) else { return nil }
            return Self.total(sum, tally.local, since: starts)
        }
        if let fresh { return fresh }
        let horizon = committedThrough()
        let read = try await ledger.tokensSpent(application: spender.application.value, user: spender.user, since: starts)
        let sum = Sum(tokens: Dictionary(zip(starts, read), uniquingKeysWith: max), horizon: horizon, readAt: now)
        return tallies.withLock { tallies in
            var tally = tallies[spender] ?? Tally(lastAsked: now)
            // A read that began earlier than the one kept is older: keep the newer.
            if tally.sum.map({ $0.horizon <= horizon && $0.readAt <= now }) ?? true {
                tally.sum = sum
                tally.local.removeAll { local in local.sequence.map { $0 <= horizon } ?? false }
            }
            tallies[spender] = tally
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

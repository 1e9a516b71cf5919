import ExternalProviderCore
import ExternalProviderSQLite
import ExternalProviderTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import ExternalProviderServer

/// The ledger as the real SQLite store takes it, except while `failing`: then every write fails as a
/// store that is down does.
final class InterruptibleLedger: UsageLedger, Sendable {
    let base: SQLiteKeyStore
    let failing = Mutex(false)

    init(_ base: SQLiteKeyStore) {
        self.base = base
    }

    func appendUsage(_ entries: [UsageEntry]) async throws {
        if failing.withLock({ $0 }) { throw StoreUnavailable("the test took the store away") }
        try await base.appendUsage(entries)
    }
    func tokensSpent(application: String, user: UserID, since: [Date]) async throws -> [Int] {
        try await base.tokensSpent(application: application, user: user, since: since)
    }
    func usage(_ query: UsageQuery) async throws -> [UsageGroup] { try await base.usage(query) }
    func removeUsage(before cutoff: Date) async throws -> Int { try await base.removeUsage(before: cutoff) }
}

@Suite("Request rates, token budgets and the ledger's queue")
struct UsageLimitsTests {
    let spender = Spender(application: "agent", user: UserID(trusted: "ada"))

    @Test("requests a minute: the limit's worth in any 60 seconds, then a wait until the oldest leaves; spenders apart")
    func requestRate() {
        let clock = Mutex(ContinuousClock.now)
        let rate = RequestRate(now: { clock.withLock { $0 } })
        for _ in 0..<3 { #expect(rate.admit(spender, perMinute: 3) == nil) }
        clock.withLock { $0 += .seconds(20) }
        #expect(rate.admit(spender, perMinute: 3) == 40)
        // A refused request is not counted: another user of the same application is not affected.
        #expect(rate.admit(Spender(application: "agent", user: UserID(trusted: "grace")), perMinute: 3) == nil)
        clock.withLock { $0 += .seconds(40) }
        for _ in 0..<3 { #expect(rate.admit(spender, perMinute: 3) == nil) }
        clock.withLock { $0 += .milliseconds(500) }
        #expect(rate.admit(spender, perMinute: 3) == 60)
        // Lowered below what was let through: the wait is until enough have left.
        #expect(rate.admit(spender, perMinute: 1) == 60)
        #expect(rate.admit(spender, perMinute: 0) == 60)
    }

    static func entry(_ spender: Spender, tokens: Int) -> UsageEntry {
        UsageEntry(
            at: Date(), application: spender.application.value, user: spender.user, provider: .openAI, model: "gpt-4o", status: 200,
            durationMilliseconds: 1, requestID: "r", tokens: TokenUsage(input: tokens, output: 0, cached: nil))
    }

    @Test("a budget counts an answer as soon as it ends, once, whether or not its entry reached the store yet")
    func budgetsCountOnce() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let recorder = UsageRecorder(ledger: store, capacity: 100, metrics: nil, logger: Logger(label: "test"))
        let today = [BudgetWindow.day.start(of: Date())]
        #expect(try await recorder.spending(of: spender, since: today) == [0])
        recorder.record(Self.entry(spender, tokens: 40), budgeted: true)
        #expect(try await recorder.spending(of: spender, since: today) == [40])
        await recorder.flush()
        #expect(try await recorder.spending(of: spender, since: today) == [40])
        // Another instance's answer, written to the store directly, shows once the sum is read again.
        try await store.appendUsage([Self.entry(spender, tokens: 2)])
        try await Task.sleep(for: SpendTracker.freshness + .milliseconds(50))
        #expect(try await recorder.spending(of: spender, since: today) == [42])
        recorder.record(Self.entry(spender, tokens: 8), budgeted: true)
        #expect(try await recorder.spending(of: spender, since: today) == [50])
        await recorder.flush()
        try await Task.sleep(for: SpendTracker.freshness + .milliseconds(50))
        #expect(try await recorder.spending(of: spender, since: today) == [50])
    }

    @Test("while the store is down entries wait; past the queue's bound they are dropped and counted, and still count against budgets")
    func outage() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let ledger = InterruptibleLedger(store)
        let metrics = ServerMetrics()
        let recorder = UsageRecorder(ledger: ledger, capacity: 3, metrics: metrics, logger: Logger(label: "test"))
        let today = [BudgetWindow.day.start(of: Date())]
        _ = try await recorder.spending(of: spender, since: today)
        ledger.failing.withLock { $0 = true }
        for _ in 0..<5 { recorder.record(Self.entry(spender, tokens: 10), budgeted: true) }
        await recorder.flush()
        #expect(recorder.queued == 3)
        #expect(try await store.usage(UsageQuery(by: .app)).isEmpty)
        let exposition = try await metrics.exposition(store: store)
        #expect(exposition.contains("\(ServerMetrics.usageDropped) 2"))
        ledger.failing.withLock { $0 = false }
        await recorder.flush()
        #expect(recorder.queued == 0)
        #expect(try await store.usage(UsageQuery(by: .app)).first?.requests == 3)
        try await Task.sleep(for: SpendTracker.freshness + .milliseconds(50))
        // The store has 30 tokens; the 20 of the dropped entries are known here only, and still count.
        #expect(try await recorder.spending(of: spender, since: today) == [50])
    }
}

import ExternalProviderCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the ledger to `--usage-retention` (removing older entries once an hour, and once at start) and
/// the request-rate counts to the spenders of the last minute.
struct UsageHousekeeping: Service {
    static let interval: Duration = .seconds(60)
    static let retentionEvery = 60

    let ledger: any UsageLedger
    /// Seconds an entry is kept.
    let retention: Double
    let rate: RequestRate
    let logger: Logger

    func run() async throws {
        await removeExpired()
        let rounds = RoundCounter()
        await Periodic.run(every: Self.interval) {
            rate.forgetIdle()
            if rounds.next() % Self.retentionEvery == 0 { await removeExpired() }
        }
    }

    func removeExpired() async {
        do {
            let removed = try await ledger.removeUsage(before: Date().addingTimeInterval(-retention))
            if removed > 0 { logger.info("removed usage ledger entries past their retention", metadata: ["removed": "\(removed)"]) }
        } catch {
            logger.warning("usage ledger entries past their retention could not be removed; trying again within the hour", metadata: ["error": "\(error)"])
        }
    }
}

/// Counts a periodic loop's rounds.
private final class RoundCounter: Sendable {
    private let count = Mutex(0)

    func next() -> Int {
        count.withLock { count in
            count += 1
            return count
        }
    }
}

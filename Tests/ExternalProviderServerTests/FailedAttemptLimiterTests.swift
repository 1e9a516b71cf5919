import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

@Suite("The failed-attempt limiter's memory stays bounded")
struct FailedAttemptLimiterTests {
    @Test("200,000 distinct failing addresses leave at most the cap in memory")
    func manyAddresses() {
        let limiter = FailedAttemptLimiter()
        for index in 0..<200_000 {
            let address = "127.\(index >> 16 & 0xff).\(index >> 8 & 0xff).\(index & 0xff)"
            if limiter.retryAfter(for: address) == nil { limiter.recordFailure(for: address) }
        }
        #expect(limiter.trackedClients <= limiter.maxClients)
        #expect(limiter.trackedClients > 0)
    }

    @Test("asking about an address stores nothing")
    func askingStoresNothing() {
        let limiter = FailedAttemptLimiter()
        for index in 0..<1000 { _ = limiter.retryAfter(for: "10.0.\(index >> 8).\(index & 0xff)") }
        #expect(limiter.trackedClients == 0)
    }

    @Test("expired failures are forgotten, and a limited address stays limited while the others churn")
    func expiry() {
        let clock = Mutex(ContinuousClock.now)
        let limiter = FailedAttemptLimiter(limit: 3, window: .seconds(60), maxClients: 100, now: { clock.withLock { $0 } })
        for _ in 0..<3 { limiter.recordFailure(for: "attacker") }
        #expect(limiter.retryAfter(for: "attacker") == 60)
        // Many other addresses fail after it: the cap is kept by forgetting the ones that failed longest
        // ago, and expired ones first.
        clock.withLock { $0 += .seconds(61) }
        #expect(limiter.retryAfter(for: "attacker") == nil)
        #expect(limiter.trackedClients == 0)
        for index in 0..<250 { limiter.recordFailure(for: "churn-\(index)") }
        #expect(limiter.trackedClients <= 100)
        for _ in 0..<3 { limiter.recordFailure(for: "attacker") }
        #expect(limiter.retryAfter(for: "attacker") == 60)
    }
}

import Synchronization

/// Failed attempts per client address over a sliding window. Its memory is bounded whatever the number
/// of addresses (16.7 M on loopback alone, and IPv6): asking about an address stores nothing, an address
/// keeps at most `limit` times, expired ones are dropped, and past `maxClients` addresses the ones that
/// failed longest ago are forgotten.
public final class FailedAttemptLimiter: Sendable {
    public typealias Instant = ContinuousClock.Instant

    let limit: Int
    let window: Duration
    let maxClients: Int
    private let now: @Sendable () -> Instant
    /// Per address, the times of its most recent failures, oldest first, at most `limit` of them.
    private let failures = Mutex<[String: [Instant]]>([:])
    /// Per address over the limit, the requests refused since the last summary; at most `maxClients`
    /// addresses, any more are counted together under `otherAddresses`.
    private let refusals = Mutex<[String: Int]>([:])
    static let otherAddresses = "other addresses"

    public init(
        limit: Int = 20, window: Duration = .seconds(60), maxClients: Int = 10_000,
        now: @escaping @Sendable () -> Instant = { .now }
    ) {
        precondition(limit > 0 && maxClients > 0)
        self.limit = limit
        self.window = window
        self.maxClients = maxClients
        self.now = now
    }

    /// Whole seconds until the client may try again, or `nil` if it is under the limit.
    func retryAfter(for client: String) -> Int? {
        let now = now()
        return failures.withLock { failures in
            guard var times = failures[client] else { return nil }
            times.removeAll { now - $0 >= window }
            guard let oldest = times.first else {
                failures[client] = nil
                return nil
            }
            failures[client] = times
            guard times.count >= limit else { return nil }
            let wait = window - (now - oldest)
            return max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
        }
    }

    func recordFailure(for client: String) {
        let now = now()
        failures.withLock { failures in
            if failures[client] == nil, failures.count >= maxClients {
                forgetOldest(&failures, now: now)
            }
            var times = failures.removeValue(forKey: client) ?? []
            times.append(now)
            if times.count > limit { times.removeFirst(times.count - limit) }
            failures[client] = times
        }
    }

    /// A request refused because its address is over the limit: counted for the next summary, not logged.
    func recordRefusal(for client: String) {
        refusals.withLock { refusals in
            let key = refusals[client] != nil || refusals.count < maxClients ? client : Self.otherAddresses
            refusals[key, default: 0] += 1
        }
    }

    /// The refusals counted since the last call, by address, and starts counting again.
    func takeRefusals() -> [String: Int] {
        refusals.withLock { refusals in
            defer { refusals = [:] }
            return refusals
        }
    }

    /// The number of addresses it remembers.
    var trackedClients: Int { failures.withLock { $0.count } }

    /// Drops every address whose failures have all expired; if that frees too little, the half whose
    /// last failure is oldest. Halving makes the sort rare: it runs once per `maxClients / 2` new addresses.
    private func forgetOldest(_ failures: inout [String: [Instant]], now: Instant) {
        failures = failures.filter { _, times in times.last.map { now - $0 < window } ?? false }
        guard failures.count >= maxClients else { return }
        let byLastFailure = failures.sorted { ($0.value.last ?? now) < ($1.value.last ?? now) }
        for (client, _) in byLastFailure.prefix(failures.count - maxClients / 2) {
            failures[client] = nil
        }
    }
}

import NIOCore
import Synchronization

/// Requests per minute per spender, counted in this instance over the last 60 seconds exactly: the
/// times of the requests let through, oldest first. A request refused here is not counted, so a client
/// that keeps retrying gets in as soon as the oldest request leaves the window.
final class RequestRate: Sendable {
    static let window: Duration = .seconds(60)
    private let admitted = Mutex<[Spender: CircularBuffer<ContinuousClock.Instant>]>([:])
    private let now: @Sendable () -> ContinuousClock.Instant

    init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.now = now
    }

    /// Lets one more request of `spender` through, or says in how many seconds one would be.
    func admit(_ spender: Spender, perMinute limit: Int) -> Int? {
        let now = now()
        return admitted.withLock { admitted in
            Self.admit(at: now, into: &admitted[spender, default: CircularBuffer()], limit: limit)
        }
    }

    private static func admit(at now: ContinuousClock.Instant, into times: inout CircularBuffer<ContinuousClock.Instant>, limit: Int) -> Int? {
        guard limit > 0 else { return Int(window / .seconds(1)) }
        let windowStart = now - window
        while let oldest = times.first, oldest <= windowStart { times.removeFirst() }
        guard times.count < limit else {
            // The request `limit` places back leaves the window at its time + 60 s: then one gets in.
            let leaving = times[times.index(times.startIndex, offsetBy: times.count - limit)]
            return max(1, Int(((leaving + window - now) / .seconds(1)).rounded(.up)))
        }
        times.append(now)
        return nil
    }

    /// Forgets spenders with no request in the window.
    func forgetIdle() {
        let windowStart = now() - Self.window
        admitted.withLock { admitted in
            admitted = admitted.filter { $0.value.last.map { $0 > windowStart } ?? false }
        }
    }
}

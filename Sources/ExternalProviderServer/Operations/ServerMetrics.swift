import CoreMetrics
import ExternalProviderCore
import Foundation
import Prometheus
import Synchronization

/// The server's metrics, through swift-metrics into a Prometheus registry of this application's own (not
/// the process-wide `MetricsSystem`, so that several applications in one test process keep theirs apart).
///
/// Every label value comes from a short fixed list (operations, status codes, outcomes, health words,
/// error kinds), never from a request: no user id, application id or key can reach a label.
final class ServerMetrics: Sendable {
    static let requests = "external_provider_requests_total"
    static let requestDuration = "external_provider_request_duration_seconds"
    static let upstreamDuration = "external_provider_upstream_duration_seconds"
    static let relayed = "external_provider_relayed_requests_total"
    static let verifications = "external_provider_key_verifications_total"
    static let keys = "external_provider_keys"
    static let storeErrors = "external_provider_store_errors_total"
    static let refusedOverLimit = "external_provider_refused_over_limit_total"
    static let tokens = "external_provider_tokens_total"
    static let policyRefusals = "external_provider_policy_refusals_total"
    static let usageDropped = "external_provider_usage_entries_dropped_total"
    static let usageQueued = "external_provider_usage_queued"

    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// One handle per label set, made once: the registry's own lookup takes a lock and builds the name.
    private let requestCounters = Mutex<[RequestLabels: CoreMetrics.Counter]>([:])
    private let durations = Mutex<[String: CoreMetrics.Timer]>([:])
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    /// How many usage ledger entries wait for the store, read at each scrape.
    private let usageQueue = Mutex<(@Sendable () -> Int)?>(nil)

    private struct RequestLabels: Hashable {
        let operation: String
        let status: Int
    }

    /// From half a millisecond (a relayed answer from a nearby upstream) to a minute (a long stream),
    /// each bound above the one before.
    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        self.factory = factory
    }

    /// One request answered: counted by operation and status, timed by operation.
    func requestAnswered(operation: String, status: Int, duration: Duration) {
        let labels = RequestLabels(operation: operation, status: status)
        let counter = requestCounters.withLock { counters in
            if let counter = counters[labels] { return counter }
            let counter = CoreMetrics.Counter(
                label: Self.requests, dimensions: [("operation", operation), ("status", String(status))], factory: factory)
            counters[labels] = counter
            return counter
        }
        counter.increment()
        timer(Self.requestDuration, operation: operation).record(duration)
    }

    /// A relayed request that `provider` answered with `status`, beginning its answer after `duration`.
    func relayed(to provider: Provider, status: Int, after duration: Duration) {
        counter(Self.relayed, [("provider", provider.name), ("status", String(status))]).increment()
        timer(Self.upstreamDuration, dimensions: [("operation", "relay"), ("provider", provider.name)]).record(duration)
    }

    /// What `provider` said of a key it was asked to check, on a write or a recheck.
    func keyVerified(_ outcome: VerificationOutcome, provider: Provider) {
        let name =
            switch outcome {
            case .accepted: "accepted"
            case .rejected: "rejected"
            case .unavailable: "unavailable"
            case .rateLimited: "rate_limited"
            case .timedOut: "timed_out"
            }
        counter(Self.verifications, [("provider", provider.name), ("outcome", name)]).increment()
    }

    /// A request refused, without a log line of its own, because its address is over the failed-attempt limit.
    func refusedOverLimit() {
        counter(Self.refusedOverLimit, []).increment()
    }

    /// The tokens a relayed answer reported, by provider and kind.
    func used(_ tokens: TokenUsage, provider: Provider) {
        for (kind, count) in [("input", tokens.input), ("output", tokens.output), ("cached", tokens.cached)] {
            guard let count, count > 0 else { continue }
            counter(Self.tokens, [("provider", provider.name), ("kind", kind)]).increment(by: count)
        }
    }

    /// A relayed request an application's policy refused, by the limit that refused it.
    func refusedByPolicy(_ limit: PolicyLimit) {
        counter(Self.policyRefusals, [("limit", limit.rawValue)]).increment()
    }

    /// A usage ledger entry dropped: the store could not take it and the queue was full.
    func usageDropped() {
        counter(Self.usageDropped, []).increment()
    }

    /// Where the ledger's queue length is read from.
    func observeUsageQueue(_ length: @escaping @Sendable () -> Int) {
        usageQueue.withLock { $0 = length }
    }

    /// A store failure a request met: `unavailable` (503) or `fault` (500).
    func storeFailed(_ kind: StoreErrorKind) {
        counter(Self.storeErrors, [("kind", kind.rawValue)]).increment()
    }

    enum StoreErrorKind: String {
        case unavailable
        case fault
    }

    /// The exposition, with the keys by health counted now from the store. If the store cannot count them,
    /// the gauges keep their last values and the caller's error is counted like any other store error.
    func exposition(store: any KeyStore) async throws -> String {
        if let queued = usageQueue.withLock({ $0 }) {
            CoreMetrics.Gauge(label: Self.usageQueued, dimensions: [], factory: factory).record(queued())
        }
        let counts = try await store.keyCounts()
        for provider in Provider.allCases {
            for health in KeyHealth.Word.allCases {
                CoreMetrics.Gauge(label: Self.keys, dimensions: [("provider", provider.name), ("health", health.rawValue)], factory: factory)
                    .record(counts[KeyCount(provider: provider, health: health)] ?? 0)
            }
        }
        return registry.emitToString()
    }

    private func timer(_ label: String, operation: String) -> CoreMetrics.Timer {
        timer(label, dimensions: [("operation", operation)])
    }

    /// The counter of `label` with these labels, made once: making one looks it up in the registry
    /// under a lock and builds its name, which per request costs more than the count.
    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        Self.handle(in: counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func timer(_ label: String, dimensions: [(String, String)]) -> CoreMetrics.Timer {
        Self.handle(in: durations, label, dimensions) { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
    }

    private static func handle<Handle>(
        in cache: borrowing Mutex<[String: Handle]>, _ label: String, _ dimensions: [(String, String)], make: () -> Handle
    ) -> Handle {
        cache.withLock { handles in
            let key = ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: "|")
            if let handle = handles[key] { return handle }
            let handle = make()
            handles[key] = handle
            return handle
        }
    }
}

extension CoreMetrics.Timer {
    func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// A verifier whose every outcome is counted.
struct CountedVerifier: KeyVerifier {
    let base: any KeyVerifier
    let metrics: ServerMetrics

    func verify(_ credentials: ProviderCredentials) async -> VerificationOutcome {
        let outcome = await base.verify(credentials)
        metrics.keyVerified(outcome, provider: credentials.provider)
        return outcome
    }
}

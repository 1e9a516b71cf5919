import ExternalProviderStore
import HTTPTypes
import Hummingbird
import Synchronization

/// The `application` security scheme: the operations need the id of a registered, unrevoked application
/// in `X-Application-ID`. Failures are counted per client address; past the limit, further attempts
/// without a valid id get 429, while a request with a valid id is never blocked by that count.
struct ApplicationAuthMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
    static var header: HTTPField.Name { HTTPField.Name("X-Application-ID")! }

    let registry: any ApplicationRegistry
    let limiter: FailedAttemptLimiter
    let recentlyValid: RecentlyValidApplications

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let id = request.headers[Self.header], !id.isEmpty, id.utf8.count <= 256, try await isActive(id) {
            return try await next(request, context)
        }
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        if let seconds = limiter.retryAfter(for: client) {
            throw Problem.tooManyFailedAttempts(retryAfter: seconds)
        }
        limiter.recordFailure(for: client)
        throw Problem.unauthorized
    }
}

extension ApplicationAuthMiddleware {
    private func isActive(_ id: String) async throws -> Bool {
        if recentlyValid.contains(id) { return true }
        guard try await registry.isActiveApplication(id: id) else { return false }
        recentlyValid.insert(id)
        return true
    }
}

/// Ids found valid in the last second, so a busy client costs one store read a second instead of one a
/// request. A revocation therefore takes effect within a second; unknown ids are never remembered.
final class RecentlyValidApplications: Sendable {
    private let lifetime: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = Mutex<[String: ContinuousClock.Instant]>([:])
    private let maxEntries = 1024

    init(lifetime: Duration = .seconds(1), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.lifetime = lifetime
        self.now = now
    }

    func contains(_ id: String) -> Bool {
        let now = now()
        return entries.withLock { entries in
            guard let checked = entries[id] else { return false }
            if now - checked < lifetime { return true }
            entries[id] = nil
            return false
        }
    }

    func insert(_ id: String) {
        let now = now()
        entries.withLock { entries in
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[id] = now
        }
    }
}

/// Failed attempts per client address over a sliding window.
public final class FailedAttemptLimiter: Sendable {
    let limit: Int
    let window: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let failures = Mutex<[String: [ContinuousClock.Instant]]>([:])
    /// Bounds memory when many addresses fail: past this, clients with no recent failure are forgotten.
    private let maxClients = 10_000

    public init(limit: Int = 20, window: Duration = .seconds(60), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.limit = limit
        self.window = window
        self.now = now
    }

    /// Whole seconds until the client may try again, or `nil` if it is under the limit.
    func retryAfter(for client: String) -> Int? {
        let now = now()
        return failures.withLock { failures in
            let recent = (failures[client] ?? []).filter { now - $0 < window }
            failures[client] = recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            let wait = window - (now - oldest)
            return max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
        }
    }

    func recordFailure(for client: String) {
        let now = now()
        failures.withLock { failures in
            if failures[client] == nil, failures.count >= maxClients {
                failures = failures.filter { _, times in times.contains { now - $0 < window } }
                if failures.count >= maxClients, let any = failures.keys.first { failures[any] = nil }
            }
            failures[client, default: []].append(now)
        }
    }
}

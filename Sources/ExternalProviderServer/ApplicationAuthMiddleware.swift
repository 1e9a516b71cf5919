import ExternalProviderCore
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
        if let id = request.headers[Self.header], Self.isWellFormed(id), try await isActive(id) {
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
    /// Ids are made as base64url; anything else (a look-alike letter such as the Kelvin sign for "K")
    /// is refused without a store read.
    static func isWellFormed(_ id: String) -> Bool {
        (1...256).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    private func isActive(_ id: String) async throws -> Bool {
        if recentlyValid.contains(id) { return true }
        guard try await registry.isActiveApplication(id: id) else { return false }
        recentlyValid.insert(id)
        return true
    }
}

/// Ids found valid in the last second, so a busy client costs one store read a second instead of one a
/// request. A revocation therefore takes effect within a second; unknown ids are never remembered.
/// Ids are compared by their bytes, never by Swift's canonical equivalence.
final class RecentlyValidApplications: Sendable {
    private let lifetime: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = Mutex<[ExactText: ContinuousClock.Instant]>([:])
    private let maxEntries = 1024

    init(lifetime: Duration = .seconds(1), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.lifetime = lifetime
        self.now = now
    }

    func contains(_ id: String) -> Bool {
        let now = now()
        return entries.withLock { entries in
            guard let checked = entries[ExactText(id)] else { return false }
            if now - checked < lifetime { return true }
            entries[ExactText(id)] = nil
            return false
        }
    }

    func insert(_ id: String) {
        let now = now()
        entries.withLock { entries in
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[ExactText(id)] = now
        }
    }
}

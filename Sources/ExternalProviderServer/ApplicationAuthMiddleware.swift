import ExternalProviderCore
import ExternalProviderStore
import HTTPTypes
import Hummingbird
import Synchronization

/// The `application` security scheme: the operations need the id of a registered, unrevoked application
/// in `X-Application-ID`, or as `Authorization: Bearer <id>`, which is how OpenAI's SDKs send their
/// `api_key`. Failures are counted per client address; past the limit, further attempts without a valid
/// id get 429, while a request with a valid id is never blocked by that count.
struct ApplicationAuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    static var header: HTTPField.Name { HTTPField.Name("X-Application-ID")! }

    let registry: any ApplicationRegistry
    let limiter: FailedAttemptLimiter
    let recentlyValid: RecentlyValidApplications
    /// Counts the requests refused over the limit; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let id = Self.presentedID(request), Self.isWellFormed(id), let grant = try await activeApplication(id) {
            var context = context
            context.application = grant
            context.facts.application = grant.name
            return try await CurrentRequest.$application.withValue(grant) { try await next(request, context) }
        }
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        if let seconds = limiter.retryAfter(for: client) {
            limiter.recordRefusal(for: client)
            metrics?.refusedOverLimit()
            context.facts.refusedWhileLimited = true
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

    /// `X-Application-ID`, else the token of `Authorization: Bearer`.
    static func presentedID(_ request: Request) -> String? {
        if let id = request.headers[header] { return id }
        guard let authorization = request.headers[.authorization] else { return nil }
        let scheme = "bearer "
        guard authorization.utf8.count > scheme.utf8.count, authorization.lowercased().hasPrefix(scheme) else { return nil }
        return String(authorization.dropFirst(scheme.count)).trimmingCharacters(in: .whitespaces)
    }

    private func activeApplication(_ id: String) async throws -> ApplicationGrant? {
        if let grant = recentlyValid.grant(for: id) { return grant }
        guard let grant = try await registry.activeApplication(id: id) else { return nil }
        recentlyValid.insert(id, grant)
        return grant
    }
}

/// Ids found valid in the last half second, so a busy client costs two store reads a second instead of
/// one a request. A revocation therefore takes effect within a second, half of it spent here and the rest
/// left for a read that was under way when it committed; unknown ids are never remembered.
/// Ids are compared by their bytes, never by Swift's canonical equivalence.
final class RecentlyValidApplications: Sendable {
    private let lifetime: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = Mutex<[ExactText: (checked: ContinuousClock.Instant, grant: ApplicationGrant)]>([:])
    private let maxEntries = 1024

    init(lifetime: Duration = .milliseconds(500), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.lifetime = lifetime
        self.now = now
    }

    func grant(for id: String) -> ApplicationGrant? {
        let now = now()
        return entries.withLock { entries in
            guard let entry = entries[ExactText(id)] else { return nil }
            if now - entry.checked < lifetime { return entry.grant }
            entries[ExactText(id)] = nil
            return nil
        }
    }

    func insert(_ id: String, _ grant: ApplicationGrant) {
        let now = now()
        entries.withLock { entries in
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[ExactText(id)] = (now, grant)
        }
    }
}

extension ApplicationGrant {
    /// An application bound to a user may use that user's key only; an unbound one, any user's.
    func mayUseKey(of user: String) -> Bool {
        boundUser.map { $0.isByteIdentical(to: user) } ?? true
    }
}

/// The routes behind it need `scope`: an authenticated application without it gets 403, in a sentence
/// that names the scope. For routes of their own (the relay); the generated operations are guarded by
/// `OperationScopeMiddleware`, which knows the operation the router matched.
struct RequireScopeMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let scope: ApplicationScope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let application = context.application, application.scopes.contains(scope) else {
            throw Problem.missingScope(scope)
        }
        return try await next(request, context)
    }
}

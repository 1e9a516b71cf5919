import ExternalProviderCore
import Foundation
import ExternalProviderStore
import HTTPTypes
import Hummingbird
import Synchronization

/// The `application` security scheme: every operation but the health, readiness, metrics and spec routes
/// needs the id of a registered, unrevoked application. It is taken from `X-Application-ID`, or from
/// wherever a provider's official SDK puts its API key, so that each SDK works with an application id as
/// its key: `Authorization: Bearer` (OpenAI's, Anthropic's 2.x, Mistral's and Groq's), `x-api-key`
/// (Anthropic's earlier ones) or `x-goog-api-key` (Gemini's). Two of them that disagree are refused, so
/// that no part of the server reads one id while another reads a different one.
///
/// An application past its expiry is refused with 401, in a sentence that says when it expired.
///
/// Failures are counted per client address; past the limit, further attempts without a valid id get
/// 429, while a request with a valid id is never blocked by that count.
struct Authenticator: Sendable {
    static var applicationIDHeader: HTTPField.Name { HTTPField.Name("X-Application-ID")! }
    /// Where the SDKs put their key, besides `Authorization: Bearer`.
    static let keyHeaders: [HTTPField.Name] = [HTTPField.Name("x-api-key")!, HTTPField.Name("x-goog-api-key")!]

    let registry: any ApplicationRegistry
    let limiter: FailedAttemptLimiter
    let recentlyValid: RecentlyValidApplications
    /// Counts the requests refused over the limit; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    static let conflictingIDs = Problem(
        .badRequest,
        "The application id is given in more than one header, differently (X-Application-ID, Authorization, x-api-key, x-goog-api-key): send one.",
        answeredBeforeBody: true)

    /// The request's application, recorded in `facts`; else the refusal: 400 for ids that disagree, 401,
    /// or 429 once its address is past the limit.
    func authenticate(_ headers: HTTPFields, facts: RequestFacts) async throws -> ApplicationGrant {
        let presented = try Self.presentedID(headers)
        if let id = presented, PlainToken.isPlain(id, maxBytes: 256), let grant = try await activeApplication(id) {
            if let expiry = grant.policy.expiresAt, grant.policy.hasExpired(at: Date()) {
                metrics?.refusedByPolicy(.expired)
                throw Problem.expired(grant.name, at: expiry)
            }
            facts.application = grant
            return grant
        }
        let client = facts.clientAddress
        if let seconds = limiter.retryAfter(for: client) {
            limiter.recordRefusal(for: client)
            metrics?.refusedOverLimit()
            facts.refusedWhileLimited = true
            throw Problem.tooManyFailedAttempts(retryAfter: seconds)
        }
        limiter.recordFailure(for: client)
        throw Problem.unauthorized
    }

    /// The one id the headers present, or `nil` if none does; two that differ are refused.
    static func presentedID(_ headers: HTTPFields) throws(Problem) -> String? {
        var found: String?
        func offer(_ value: String?) throws(Problem) {
            guard let value else { return }
            if let found, !found.isByteIdentical(to: value) { throw conflictingIDs }
            found = value
        }
        for value in headers[values: applicationIDHeader] { try offer(value) }
        for authorization in headers[values: .authorization] { try offer(bearerToken(authorization)) }
        for name in keyHeaders {
            for value in headers[values: name] { try offer(value.trimmingCharacters(in: .whitespaces)) }
        }
        return found
    }

    /// The token of `Bearer <token>`, or `nil` for another scheme.
    private static func bearerToken(_ authorization: String) -> String? {
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

/// The routes behind it (the relay's) need an application with `scope`: one without it gets 403, in a
/// sentence that names the scope. The generated operations are checked by `OperationMiddleware` instead.
struct ApplicationAuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: Authenticator
    let scope: ApplicationScope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let grant = try await authenticator.authenticate(request.headers, facts: context.facts)
        guard grant.scopes.contains(scope) else { throw Problem.missingScope(scope) }
        return try await next(request, context)
    }
}

/// Text a client chose that may go into a header, a log line or a store lookup as it is: 1 to
/// `maxBytes` ASCII letters, digits, `-`, `_`, and `.` when allowed. Application ids are made as
/// base64url, so a look-alike letter (the Kelvin sign for "K") is refused without a store read.
enum PlainToken {
    static func isPlain(_ text: String, maxBytes: Int, allowingDot: Bool = false) -> Bool {
        (1...maxBytes).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                    || (allowingDot && byte == UInt8(ascii: "."))
            }
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

import Crypto
import ExternalProviderCore
import Foundation

/// The applications allowed to call the API. An id is shown once, when made; the store keeps only its
/// SHA-256, so a copy of the data dir yields no usable id.
public protocol ApplicationRegistry: Sendable {
    /// Makes an application and returns its new id. Throws `ApplicationError.nameTaken` for a used name.
    func registerApplication(named name: String, scopes: Set<ApplicationScope>, boundUser: String?, policy: ApplicationPolicy) async throws -> String
    func applications() async throws -> [RegisteredApplication]
    /// Returns false if there is no active application of that name.
    func revokeApplication(named name: String) async throws -> Bool
    /// Changes the policy of the active application of that name, with an `apps-update` audit entry
    /// naming what changed; returns the policy after, or `nil` if there is no such application.
    func updateApplication(named name: String, _ change: @escaping @Sendable (ApplicationPolicy) -> ApplicationPolicy) async throws -> ApplicationPolicy?
    /// What the application with this id may do, or `nil` if there is no active one.
    func activeApplication(id: String) async throws -> ApplicationGrant?
}

extension ApplicationRegistry {
    /// An application with the default scopes: `relay` alone when bound to a user, `keys` otherwise.
    public func registerApplication(named name: String, boundUser: String? = nil) async throws -> String {
        try await registerApplication(named: name, scopes: ApplicationScope.defaults(boundUser: boundUser), boundUser: boundUser)
    }

    /// An application with no limits.
    public func registerApplication(named name: String, scopes: Set<ApplicationScope>, boundUser: String?) async throws -> String {
        try await registerApplication(named: name, scopes: scopes, boundUser: boundUser, policy: .unlimited)
    }

    public func isActiveApplication(id: String) async throws -> Bool {
        try await activeApplication(id: id) != nil
    }
}

/// What an application may call. Stored by these names, comma-separated, in `application.scopes`.
public enum ApplicationScope: String, Sendable, Hashable, CaseIterable, Comparable {
    /// The three ExternalProvider operations.
    case keys
    /// The relay and the PiecesOS model list: the stored key used on the user's behalf.
    case relay
    /// The usage ledger (`GET /v1/usage`): what every application spent. Given only when asked for.
    case admin

    public static func < (left: ApplicationScope, right: ApplicationScope) -> Bool { left.rawValue < right.rawValue }

    public static func defaults(boundUser: String?) -> Set<ApplicationScope> {
        boundUser == nil ? [.keys] : [.relay]
    }

    /// The stored form, e.g. `keys,relay`; written out here, not derived, since it is on disk.
    package static func stored(_ scopes: Set<ApplicationScope>) -> String {
        scopes.sorted().map(\.rawValue).joined(separator: ",")
    }

    package static func parse(stored: String) -> Set<ApplicationScope> {
        Set(stored.split(separator: ",").compactMap { ApplicationScope(rawValue: String($0)) })
    }
}

/// An active application, as the server needs it for a request.
public struct ApplicationGrant: Sendable, Equatable {
    public let name: String
    public let scopes: Set<ApplicationScope>
    /// The only user whose key this application may use; `nil`: any user it names.
    public let boundUser: String?
    /// Its limits as a virtual key.
    public let policy: ApplicationPolicy

    public init(name: String, scopes: Set<ApplicationScope>, boundUser: String?, policy: ApplicationPolicy = .unlimited) {
        self.name = name
        self.scopes = scopes
        self.boundUser = boundUser
        self.policy = policy
    }
}

public struct RegisteredApplication: Sendable, Equatable {
    public let name: String
    public let createdAt: Date
    public let revokedAt: Date?
    public let scopes: Set<ApplicationScope>
    public let boundUser: String?
    public let policy: ApplicationPolicy

    package init(name: String, createdAt: Date, revokedAt: Date?, scopes: Set<ApplicationScope>, boundUser: String?, policy: ApplicationPolicy) {
        self.name = name
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.scopes = scopes
        self.boundUser = boundUser
        self.policy = policy
    }
}

public enum ApplicationError: Error, Equatable, CustomStringConvertible {
    case invalidName
    case nameTaken(String)
    case noScopes

    public var description: String {
        switch self {
        case .invalidName: "an application name is 1 to 64 letters, digits, '.', '_' or '-'"
        case .nameTaken(let name): "an application named '\(name)' already exists; pick another name or revoke it first"
        case .noScopes: "an application needs at least one scope: keys, relay, admin"
        }
    }
}

package enum ApplicationID {
    /// 128 random bits, base64url without padding: 22 characters, safe in a header and a URL.
    package static func generate() -> String {
        let bytes = SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }
        return bytes.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    package static func hash(_ id: String) -> Data {
        Data(SHA256.hash(data: Data(id.utf8)))
    }

    /// A new application's id and the hash a store keeps, once its name and scopes are checked.
    package static func newApplication(named name: String, scopes: Set<ApplicationScope>) throws(ApplicationError) -> (id: String, hash: Data) {
        try validate(name: name)
        guard !scopes.isEmpty else { throw .noScopes }
        let id = generate()
        return (id, hash(id))
    }

    static func validate(name: String) throws(ApplicationError) {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy(allowed.contains) else { throw .invalidName }
    }
}

/// How a policy is stored, by both stores: a column per limit, each written out here since it is on
/// disk. Model globs are joined by newlines (a glob never holds one), providers by commas, by their
/// stored names.
package struct PolicyColumns: Sendable, Equatable {
    package let models: String?
    package let providers: String?
    package let expiresAt: Date?
    package let requestsPerMinute: Int?
    package let tokensPerDay: Int?
    package let tokensPerMonth: Int?

    package init(_ policy: ApplicationPolicy) {
        models = policy.models.map { $0.map(\.pattern).joined(separator: "\n") }
        providers = policy.providers.map { Provider.allCases.filter($0.contains).map(\.rawValue).joined(separator: ",") }
        expiresAt = policy.expiresAt
        requestsPerMinute = policy.requestsPerMinute
        tokensPerDay = policy.tokensPerDay
        tokensPerMonth = policy.tokensPerMonth
    }

    package init(models: String?, providers: String?, expiresAt: Date?, requestsPerMinute: Int?, tokensPerDay: Int?, tokensPerMonth: Int?) {
        self.models = models
        self.providers = providers
        self.expiresAt = expiresAt
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerDay = tokensPerDay
        self.tokensPerMonth = tokensPerMonth
    }

    /// The policy the columns hold; a glob or provider a newer version wrote is kept out.
    package var policy: ApplicationPolicy {
        ApplicationPolicy(
            models: models.map { $0.split(separator: "\n").compactMap { try? ModelGlob(String($0)) } },
            providers: providers.map { Set($0.split(separator: ",").compactMap { Provider(rawValue: String($0)) }) },
            expiresAt: expiresAt, requestsPerMinute: requestsPerMinute, tokensPerDay: tokensPerDay, tokensPerMonth: tokensPerMonth)
    }

    /// The audit's names of the limits that differ between two policies.
    package static func changedFields(from old: ApplicationPolicy, to new: ApplicationPolicy) -> [AuditField] {
        var fields: [AuditField] = []
        if old.models != new.models { fields.append(.models) }
        if old.providers != new.providers { fields.append(.providers) }
        if old.expiresAt != new.expiresAt { fields.append(.expiresAt) }
        if old.requestsPerMinute != new.requestsPerMinute { fields.append(.requestsPerMinute) }
        if old.tokensPerDay != new.tokensPerDay { fields.append(.tokensPerDay) }
        if old.tokensPerMonth != new.tokensPerMonth { fields.append(.tokensPerMonth) }
        return fields.sorted()
    }
}

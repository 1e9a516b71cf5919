import Foundation

/// Where accounts and their keys live: the primitives every store offers, and nothing more. The rules
/// (what an operation does, when a key must be checked, what a change of key means for its health) live
/// in `KeyOperation` and `KeyService`, which every store serves the same way.
public protocol KeyStore: Sendable {
    /// The id of the master key the store's values are sealed under: safe to print.
    var masterKeyID: String { get }

    /// Runs a trivial query, for readiness: returns once the store answered, throws if it cannot.
    func checkReachable() async throws

    /// The user's account as stored, or `nil` for an unknown user.
    func account(for user: UserID) async throws -> UserAccount?

    /// One transaction on one user's account. `decide` gets the account as it is inside the transaction
    /// (`nil` for an unknown user) and returns what to store; the store writes only the difference, with
    /// the change's audit entry if there is any difference, and returns the account after it, once it is
    /// durable. If `decide` throws, nothing changes and its error
    /// comes back as it was thrown. Writes to one user serialise, so no update is lost. A store may call
    /// `decide` more than once (a retried transaction), so it must depend on nothing but its argument.
    func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount

    /// Records what the provider said of `credentials`, only if they are still the user's stored pair
    /// (a key replaced meanwhile keeps its own health). Returns whether it recorded.
    func recordHealth(_ health: KeyHealth, of credentials: ProviderCredentials, for user: UserID) async throws -> Bool

    /// The stored keys of `user` (every user's when `nil`), masked, with their health.
    func storedKeys(of user: UserID?) async throws -> [StoredKeySummary]

    /// How many stored keys each provider has of each health: for metrics, without opening a key.
    func keyCounts() async throws -> [KeyCount: Int]

    /// The audit trail's entries that match `query`, oldest first.
    func auditTrail(_ query: AuditQuery) async throws -> [AuditEntry]

    /// Up to `limit` of `provider`'s keys never checked or last checked before `cutoff`, the longest
    /// unchecked first, leaving out those whose check was put off (`deferCheck`) past `now`.
    func keysDueForCheck(of provider: Provider, checkedBefore cutoff: Date, at now: Date, limit: Int) async throws -> [(UserID, ProviderCredentials)]

    /// Puts off the next check of `credentials` until `until`, after a check that got no answer, only if
    /// they are still the user's stored pair; the next health recorded for them clears it. Returns
    /// whether it did.
    func deferCheck(of credentials: ProviderCredentials, for user: UserID, until: Date) async throws -> Bool
}

/// What one transaction leaves behind: the account after it, and the health to record for every key
/// whose (key, organization) pair it sets, new or replaced. Keys whose pair it keeps keep their health.
public struct AccountChange: Sendable, Equatable {
    public let account: UserAccount
    public let healthOfNewCredentials: KeyHealth
    /// Appended to the audit trail in the same transaction, when the change writes anything.
    public let audit: AuditEntry?

    public init(account: UserAccount, healthOfNewCredentials: KeyHealth, audit: AuditEntry?) {
        self.account = account
        self.healthOfNewCredentials = healthOfNewCredentials
        self.audit = audit
    }
}

/// The version of the data this product stores, the same on every store: `schema.migration` in every
/// response. It goes up by one whenever what is stored changes meaning or gains a field, and each
/// store's migrations say which version they bring the store to.
public enum DataVersion {
    public static let current = 6
}

/// The store cannot be reached just now (its database is down or restarting): the request may be sent
/// again. Answered 503, never 500; the store recovers by itself when its database returns.
public struct StoreUnavailable: Error, CustomStringConvertible, Sendable {
    /// What happened, for the log: never any request data.
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension KeyStore {
    /// Every stored key, masked, with its health: for operators.
    public func storedKeys() async throws -> [StoredKeySummary] {
        try await storedKeys(of: nil)
    }
}

/// A provider and a health, which stored keys are counted by.
public struct KeyCount: Hashable, Sendable {
    public let provider: Provider
    public let health: KeyHealth.Word

    public init(provider: Provider, health: KeyHealth.Word) {
        self.provider = provider
        self.health = health
    }
}

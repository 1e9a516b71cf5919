import ExternalProviderCore
import Foundation

/// Where accounts and their keys live. Each call is one transaction; writes to one user serialise,
/// so no update is lost, and a write returns only once it is durable.
public protocol KeyStore: Sendable {
    /// The number of migrations the store's schema has had: `schema.migration` in every response.
    var schemaVersion: Int { get }

    /// The user's account as stored, or `nil` for an unknown user.
    func account(for user: UserID) async throws -> UserAccount?

    /// Applies `operation` to the user's account in one transaction and returns the account after it.
    /// Throws `StateConflict` when the operation does not fit the current state, and
    /// `VerificationOutdated` when the credentials it needs checked are no longer those `verification`
    /// says the provider accepted; nothing changes then. A row whose credentials change records when
    /// they were verified, or no time when verification is off.
    func perform(_ operation: KeyOperation, for user: UserID, verification: Verification) async throws -> UserAccount

    /// Records what the provider said of `credentials`, only if they are still the user's stored pair
    /// (a key replaced meanwhile keeps its own health). Returns whether it recorded.
    func recordHealth(_ health: KeyHealth, of credentials: ProviderCredentials, for user: UserID) async throws -> Bool

    /// Every stored key, masked, with its health: for operators.
    func storedKeys() async throws -> [StoredKeySummary]

    /// Up to `limit` keys never checked or last checked before `cutoff`, the longest unchecked first.
    func keysDueForCheck(checkedBefore cutoff: Date, limit: Int) async throws -> [(UserID, ProviderCredentials)]
}

extension KeyStore {
    public func perform(_ operation: KeyOperation, for user: UserID) async throws -> UserAccount {
        try await perform(operation, for: user, verification: .off)
    }
}

/// Another write changed the user's key while this one was being checked with the provider.
public struct VerificationOutdated: Error, Equatable, Sendable {
    public init() {}
}

/// A fault in the store itself: its detail is for the log, never for a response.
public struct StoreFault: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

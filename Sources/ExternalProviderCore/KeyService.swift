import Foundation
import Synchronization

/// The write use case, once for every store: read the account, refuse what its state refuses, check new
/// credentials with the provider outside any transaction, then write in one transaction, and start over
/// when the credentials to check changed meanwhile.
public struct KeyService: Sendable {
    /// How often a write whose key changed during its check is checked again before giving up.
    public static let verificationAttempts = 3

    public let store: any KeyStore
    /// `nil` when verification is off: keys are stored unchecked, as `unverified`.
    let verifier: (any KeyVerifier)?
    let now: @Sendable () -> Date

    public init(store: any KeyStore, verifier: (any KeyVerifier)?, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.verifier = verifier
        self.now = now
    }

    /// Applies `operation` to the user's account and returns the account after it, stored, with its audit
    /// entry in the same transaction. Expected refusals are thrown as `KeyWriteRejection`; anything else
    /// thrown is a fault.
    public func perform(_ operation: KeyOperation, for user: UserID, origin: ChangeOrigin) async throws -> UserAccount {
        try await change(operation, for: user, origin: origin).after
    }

    /// `perform`, with the account as it was just before the change: for an answer that says whether a
    /// key was new (a PUT's 201).
    public func change(_ operation: KeyOperation, for user: UserID, origin: ChangeOrigin) async throws -> AccountChangeResult {
        do {
            guard let verifier else {
                return try await write(operation, for: user, origin: origin, expecting: nil, health: .unverified, checked: false)
            }
            for _ in 0..<Self.verificationAttempts {
                let current = try await store.account(for: user)
                // A request the state already refuses (404/409) is answered without asking the provider.
                _ = try operation.apply(to: current, user: user)
                let credentials = operation.credentialsToVerify(on: current)
                var health = KeyHealth.unverified
                if let credentials {
                    let provider = credentials.provider
                    switch await verifier.verify(credentials) {
                    case .accepted: health = .valid(checkedAt: now())
                    case .rejected(let code): throw KeyWriteRejection.keyRefused(provider, code: code)
                    case .unavailable(let reason): throw KeyWriteRejection.providerUnavailable(provider, reason: reason)
                    case .rateLimited:
                        throw KeyWriteRejection.providerUnavailable(provider, reason: "\(provider.displayName) is limiting requests (429)")
                    case .timedOut: throw KeyWriteRejection.providerTimedOut(provider)
                    }
                }
                do {
                    return try await write(operation, for: user, origin: origin, expecting: credentials, health: health, checked: true)
                } catch is CredentialsChangedMeanwhile {
                    continue
                }
            }
            throw KeyWriteRejection.changedDuringCheck
        } catch let conflict as StateConflict {
            throw KeyWriteRejection.conflict(conflict)
        }
    }

    /// The transaction: the operation on the account as it is now, refused if the credentials it needs
    /// checked are no longer `expected`, the ones the provider just accepted.
    private func write(
        _ operation: KeyOperation, for user: UserID, origin: ChangeOrigin, expecting expected: ProviderCredentials?, health: KeyHealth,
        checked: Bool
    ) async throws -> AccountChangeResult {
        // The account `decide` last saw: a store may decide more than once, and the last decision is the one it wrote.
        let before = Mutex<UserAccount?>(nil)
        let after = try await store.changeAccount(of: user) { [now] current in
            before.withLock { $0 = current }
            let after = try operation.apply(to: current, user: user)
            let credentials = operation.credentialsToVerify(on: current)
            if checked, credentials != expected { throw CredentialsChangedMeanwhile() }
            let audit = AuditEntry.accountChange(
                operation.auditAction(on: current), from: current, to: after, origin: origin, verification: credentials == nil ? nil : health,
                at: now())
            return AccountChange(account: after, healthOfNewCredentials: health, audit: audit)
        }
        return AccountChangeResult(before: before.withLock { $0 }, after: after)
    }
}

/// A change as it landed: the account just before it, and after it.
public struct AccountChangeResult: Sendable {
    public let before: UserAccount?
    public let after: UserAccount
}

/// Why a write was refused, each a different answer to the caller.
public enum KeyWriteRejection: Error, Equatable, Sendable {
    /// The operation does not fit the user's state (404, 409).
    case conflict(StateConflict)
    /// The provider refused the credentials; `code` is its error code, e.g. `invalid_api_key`.
    case keyRefused(Provider, code: String)
    /// The provider could not be asked: refused connection, TLS failure, 429, 5xx, anything unexpected.
    case providerUnavailable(Provider, reason: String)
    /// The provider did not answer in time.
    case providerTimedOut(Provider)
    /// Another write kept changing the key while this one's was being checked.
    case changedDuringCheck
}

/// Another write changed the user's credentials while this one's were being checked.
struct CredentialsChangedMeanwhile: Error {}

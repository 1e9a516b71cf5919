import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import Synchronization

/// Turns what a provider answered to a call made with a stored key into that key's health: a refusal is
/// recorded at once; a success at most once a minute per key, so that traffic does not become writes.
final class KeyHealthReporter: Sendable {
    static let successInterval: Duration = .seconds(60)
    private static let maxRemembered = 10_000

    private let store: any KeyStore
    private let logger: Logger
    private let now: @Sendable () -> ContinuousClock.Instant
    private let lastSuccess = Mutex<[ExactText: ContinuousClock.Instant]>([:])

    init(store: any KeyStore, logger: Logger, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.store = store
        self.logger = logger
        self.now = now
    }

    func rejected(_ credentials: ProviderCredentials, of user: UserID, code: String) async {
        lastSuccess.withLock { $0[Self.key(user, credentials)] = nil }
        await record(.rejected(checkedAt: Date(), code: code), credentials, user)
    }

    func accepted(_ credentials: ProviderCredentials, of user: UserID) async {
        if successIsDue(credentials, user) { await record(.valid(checkedAt: Date()), credentials, user) }
    }

    /// `accepted`, off the caller's path: a task is made only when a write is due, not per request.
    func acceptedInBackground(_ credentials: ProviderCredentials, of user: UserID) {
        guard successIsDue(credentials, user) else { return }
        Task { await record(.valid(checkedAt: Date()), credentials, user) }
    }

    /// Whether a success is to be written now, at most once a minute per key; if so, it counts as written.
    private func successIsDue(_ credentials: ProviderCredentials, _ user: UserID) -> Bool {
        let now = now()
        return lastSuccess.withLock { seen in
            let key = Self.key(user, credentials)
            if let last = seen[key], now - last < Self.successInterval { return false }
            if seen.count >= Self.maxRemembered { seen.removeAll(keepingCapacity: true) }
            seen[key] = now
            return true
        }
    }

    private func record(_ health: KeyHealth, _ credentials: ProviderCredentials, _ user: UserID) async {
        do {
            _ = try await store.recordHealth(health, of: credentials, for: user)
        } catch {
            logger.warning("could not record a key's health", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
        }
    }

    private static func key(_ user: UserID, _ credentials: ProviderCredentials) -> ExactText {
        ExactText(credentials.provider.rawValue + "\u{0}" + user.rawValue)
    }
}

import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Re-verifies one provider's stored keys whose last check is older than `interval` (`--recheck-interval`),
/// so that a key that expires or is revoked is noticed without anyone using it. Each provider has its own:
/// at most `concurrency` checks run at once per provider; a batch is taken every `tick`, sooner while
/// keys are overdue, and the pause doubles (up to `maxPause`) whenever the provider answers 429, which
/// slows that provider's checks and no other's.
///
/// A check that gets no answer (5xx, a timeout, a refused connection) records no health, so on its own
/// the key would stay first in line and be checked again at once, taking every turn from the keys behind
/// it. Instead its next check is put off in the store, by `firstDeferral`, doubled at each further
/// failure, up to `interval`.
struct KeyRechecker: Service {
    let provider: Provider
    let store: any KeyStore
    let verifier: any KeyVerifier
    let interval: TimeInterval
    let logger: Logger
    var concurrency = 4
    var now: @Sendable () -> Date = { Date() }
    /// Failures in a row per key, to double its deferral. Kept in memory: after a restart a failing key
    /// starts again at `firstDeferral`.
    let failures = ConsecutiveFailures()

    /// Spreads a full day's checks over about 1,440 looks, within 1 s and 60 s.
    var tick: Duration { .seconds(min(60, max(1, interval / 1440))) }
    static let catchUpPause: Duration = .seconds(1)
    static let maxPause: Duration = .seconds(600)
    static let firstDeferral: TimeInterval = 60

    func run() async throws {
        await Periodic.run(firstPause: tick) { previous in await checkDueKeys(previousPause: previous) }
    }

    /// One look: checks up to `concurrency` due keys and records what each provider said. Returns how long to
    /// wait before the next look.
    func checkDueKeys(previousPause: Duration) async -> Duration {
        let due: [(UserID, ProviderCredentials)]
        do {
            let now = now()
            due = try await store.keysDueForCheck(of: provider, checkedBefore: now.addingTimeInterval(-interval), at: now, limit: concurrency)
        } catch {
            logger.warning("could not read the keys due for a check", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return tick
        }
        let outcomes = await withTaskGroup(of: VerificationOutcome.self) { group in
            for (user, credentials) in due {
                group.addTask {
                    let outcome = await verifier.verify(credentials)
                    await record(outcome, of: credentials, for: user)
                    return outcome
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        if outcomes.contains(.rateLimited) {
            return min(previousPause * 2, Self.maxPause)
        }
        return due.count == concurrency ? Self.catchUpPause : tick
    }

    private func record(_ outcome: VerificationOutcome, of credentials: ProviderCredentials, for user: UserID) async {
        let key = ConsecutiveFailures.key(user, credentials)
        let health: KeyHealth
        switch outcome {
        case .accepted:
            health = .valid(checkedAt: now())
        case .rejected(let code):
            health = .rejected(checkedAt: now(), code: code)
            let provider = credentials.provider
            logger.warning(
                "a stored key was rejected by \(provider.displayName)", metadata: ["user": "\(user)", "\(provider.name).error_code": "\(code)"])
        case .rateLimited:
            // The provider's limit, not the key's fault: the whole loop slows down instead.
            return
        case .unavailable, .timedOut:
            let count = failures.increment(key)
            let delay = min(Self.firstDeferral * pow(2, Double(min(count - 1, 30))), max(interval, Self.firstDeferral))
            do {
                _ = try await store.deferCheck(of: credentials, for: user, until: now().addingTimeInterval(delay))
            } catch {
                logger.warning("could not put off a key's check", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            }
            return
        }
        failures.clear(key)
        do {
            _ = try await store.recordHealth(health, of: credentials, for: user)
        } catch {
            logger.warning("could not record a key's health", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
        }
    }
}

/// How many checks in a row got no answer, per key; at most `maxKeys` remembered.
final class ConsecutiveFailures: Sendable {
    private static let maxKeys = 10_000
    private let counts = Mutex<[ExactText: Int]>([:])

    static func key(_ user: UserID, _ credentials: ProviderCredentials) -> ExactText {
        ExactText(credentials.provider.rawValue + "\u{0}" + user.rawValue)
    }

    /// The count after this failure.
    func increment(_ key: ExactText) -> Int {
        counts.withLock { counts in
            if counts[key] == nil, counts.count >= Self.maxKeys { counts.removeAll(keepingCapacity: true) }
            counts[key, default: 0] += 1
            return counts[key]!
        }
    }

    func clear(_ key: ExactText) {
        _ = counts.withLock { $0.removeValue(forKey: key) }
    }
}

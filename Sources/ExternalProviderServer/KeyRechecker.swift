import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import ServiceLifecycle

/// Re-verifies stored keys whose last check is older than `interval` (`--recheck-interval`), so that a
/// key that expires or is revoked is noticed without anyone using it. At most `concurrency` checks run at
/// once; a batch is taken every `tick`, sooner while keys are overdue, and the pause doubles (up to
/// `maxPause`) whenever OpenAI answers 429.
struct KeyRechecker: Service {
    let store: any KeyStore
    let verifier: any KeyVerifier
    let interval: TimeInterval
    let logger: Logger
    var concurrency = 4
    var now: @Sendable () -> Date = { Date() }

    /// Spreads a full day's checks over about 1,440 looks, within 1 s and 60 s.
    var tick: Duration { .seconds(min(60, max(1, interval / 1440))) }
    static let catchUpPause: Duration = .seconds(1)
    static let maxPause: Duration = .seconds(600)

    func run() async throws {
        var pause = tick
        // Ends on a graceful shutdown and on cancellation, which is how the service group stops the
        // services when the server fails to start.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { [pause] in try await Task.sleep(for: pause) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            pause = await checkDueKeys(previousPause: pause)
        }
    }

    /// One look: checks up to `concurrency` due keys and records what OpenAI said. Returns how long to
    /// wait before the next look.
    func checkDueKeys(previousPause: Duration) async -> Duration {
        let due: [(UserID, ProviderCredentials)]
        do {
            due = try await store.keysDueForCheck(checkedBefore: now().addingTimeInterval(-interval), limit: concurrency)
        } catch {
            logger.warning("could not read the keys due for a check", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return tick
        }
        let outcomes = await withTaskGroup(of: VerificationOutcome.self) { group in
            for (user, credentials) in due {
                group.addTask {
                    let outcome = await verifier.verify(credentials)
                    let health: KeyHealth? =
                        switch outcome {
                        case .accepted: .valid(checkedAt: now())
                        case .rejected(let code): .rejected(checkedAt: now(), code: code)
                        case .unavailable, .timedOut: nil
                        }
                    if let health {
                        _ = try? await store.recordHealth(health, of: credentials, for: user)
                        if case .rejected(_, let code) = health {
                            logger.warning("a stored key was rejected by OpenAI", metadata: ["user": "\(user)", "openai.error_code": "\(code)"])
                        }
                    }
                    return outcome
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        if outcomes.contains(.unavailable(reason: OpenAIKeyVerifier.rateLimitedReason)) {
            return min(previousPause * 2, Self.maxPause)
        }
        return due.count == concurrency ? Self.catchUpPause : tick
    }
}

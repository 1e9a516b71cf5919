import Logging
import ServiceLifecycle

/// The loop of every background service: a step, a pause, and again, until the server shuts down
/// gracefully or the service is cancelled (the service group's way to stop a start that failed).
enum Periodic {
    /// Runs `step` after `firstPause`, then after each pause the step before returned.
    static func run(firstPause: Duration, _ step: @Sendable (_ previousPause: Duration) async -> Duration) async {
        var pause = firstPause
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { [pause] in try await Task.sleep(for: pause) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            pause = await step(pause)
        }
    }

    /// Runs `step` every `interval`.
    static func run(every interval: Duration, _ step: @Sendable () async -> Void) async {
        await run(firstPause: interval) { _ in
            await step()
            return interval
        }
    }
}

/// Logs, for each address over the failed-attempt limit, how many of its requests were refused in the
/// last interval: one line per address per interval however many it sends, so that a local client
/// cannot grow the log as fast as it can send requests.
struct RefusalSummary: Service {
    static let interval: Duration = .seconds(10)
    let limiter: FailedAttemptLimiter
    let logger: Logger

    func run() async throws {
        await Periodic.run(every: Self.interval) { report() }
        report()
    }

    func report() {
        for (address, count) in limiter.takeRefusals().sorted(by: { $0.key < $1.key }) {
            logger.notice(
                "refused requests from an address over the failed-attempt limit",
                metadata: ["client.address": "\(address)", "refused": "\(count)", "interval_s": "\(Self.interval.components.seconds)"])
        }
    }
}

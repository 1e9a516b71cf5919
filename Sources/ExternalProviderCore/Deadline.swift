import Synchronization

/// Bounds how long a caller waits for an operation, whatever the operation does with cancellation.
///
/// A task group's timeout is not enough: the group returns only once every child has, so an operation
/// that ignores cancellation (a query on a connection the database dropped as it stopped) keeps its
/// caller waiting past the deadline. Here the caller is answered at the deadline, and the operation,
/// cancelled, ends in the background.
public enum Deadline {
    /// `body`'s result, or the error `expired` makes once `limit` has passed.
    public static func answering<Result: Sendable>(
        within limit: Duration, orThrowing expired: @escaping @Sendable () -> any Error,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let race = Race<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.waiting.withLock { $0 = continuation }
                let bodyTask = Task {
                    let result: Swift.Result<Result, any Error>
                    do { result = .success(try await body()) } catch { result = .failure(error) }
                    race.waiting.withLock { $0.take() }?.resume(with: result)
                    race.tasks.withLock { $0?.timer.cancel() }
                }
                let timer = Task {
                    guard (try? await Task.sleep(for: limit)) != nil else { return }
                    guard let continuation = race.waiting.withLock({ $0.take() }) else { return }
                    bodyTask.cancel()
                    continuation.resume(throwing: expired())
                }
                race.tasks.withLock { $0 = (bodyTask, timer) }
                // A body that ended before the timer was stored could not cancel it.
                if race.waiting.withLock({ $0 == nil }) { timer.cancel() }
                // A caller cancelled before the tasks were stored: the handler found nothing to cancel.
                if Task.isCancelled { bodyTask.cancel() }
            }
        } onCancel: {
            race.tasks.withLock { $0?.body.cancel() }
        }
    }
}

/// An operation and its deadline, whichever ends first answering the one caller waiting.
private final class Race<Result: Sendable>: Sendable {
    let waiting = Mutex<CheckedContinuation<Result, any Error>?>(nil)
    let tasks = Mutex<(body: Task<Void, Never>, timer: Task<Void, Never>)?>(nil)
}

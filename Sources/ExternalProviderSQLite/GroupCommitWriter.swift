import ExternalProviderStore
import GRDB
import Synchronization

/// Group commit: writes that arrive while a commit is under way wait, then all of them run in the next
/// transaction, each in its own savepoint, and share one commit and so one fsync. Every caller returns
/// only after the commit that holds its write, so "a returned write is on disk" still holds, and writes
/// still run one after another, so none is lost.
final class GroupCommitWriter: Sendable {
    private struct Pending: Sendable {
        let work: @Sendable (Database) throws -> any Sendable
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var draining = false
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())

    init(_ writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Runs `work` inside a savepoint of the next group transaction. If `work` throws, only its own
    /// changes are rolled back and the error is rethrown to this caller alone.
    func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let value = try await withCheckedThrowingContinuation { continuation in
            let startsDraining = state.withLock { state in
                state.queue.append(Pending(work: work, continuation: continuation))
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if startsDraining {
                // The drain runs on GRDB's writer queue and keeps it until nothing is queued: one wake-up
                // serves every write that arrives meanwhile.
                writer.asyncWriteWithoutTransaction { db in self.drain(db) }
            }
        }
        return value as! T
    }

    private func drain(_ db: Database) {
        while true {
            let batch = state.withLock { state in
                let batch = state.queue
                state.queue = []
                if batch.isEmpty { state.draining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                var results: [Result<any Sendable, any Error>] = []
                results.reserveCapacity(batch.count)
                try db.inTransaction(.immediate) {
                    for pending in batch {
                        // A savepoint per write, with statements prepared once: a write that throws is
                        // rolled back alone, and the others in the batch commit.
                        try db.cachedStatement(sql: "SAVEPOINT groupCommitItem").execute()
                        do {
                            results.append(.success(try pending.work(db)))
                            try db.cachedStatement(sql: "RELEASE SAVEPOINT groupCommitItem").execute()
                        } catch {
                            results.append(.failure(error))
                            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT groupCommitItem").execute()
                            try db.cachedStatement(sql: "RELEASE SAVEPOINT groupCommitItem").execute()
                        }
                    }
                    return .commit
                }
                for (pending, result) in zip(batch, results) {
                    pending.continuation.resume(with: result)
                }
            } catch {
                // The commit failed: nothing of this batch is on disk, so every caller hears so.
                for pending in batch {
                    pending.continuation.resume(throwing: error)
                }
            }
        }
    }
}

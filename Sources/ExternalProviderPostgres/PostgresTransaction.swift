import ExternalProviderCore
import ExternalProviderStore
import Logging
import NIOCore
import PostgresNIO

/// One transaction on one pooled connection, whose errors come back as they were thrown (PostgresNIO's
/// own `withTransaction` wraps them), with connection failures turned into `StoreUnavailable`.
enum PostgresTransaction {
    static func run<Result: Sendable>(
        on client: PostgresClient, availability: PostgresAvailability, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await availability.classifying {
            try await client.withConnection { connection in try await run(on: connection, logger: logger) { try await body(connection) } }
        }
    }

    /// `body` in a transaction on `connection`: committed if it returns, rolled back if it throws.
    static func run<Result: Sendable>(
        on connection: PostgresConnection, logger: Logger, _ body: () async throws -> Result
    ) async throws -> Result {
        try await connection.query("BEGIN", logger: logger)
        let result: Result
        do {
            result = try await body()
        } catch {
            do {
                try await connection.query("ROLLBACK", logger: logger)
            } catch {
                // A connection whose transaction state is unknown must not serve another request.
                try? await connection.close()
            }
            throw error
        }
        // The commit returns once it is durable (synchronous_commit=on, the server's default).
        try await connection.query("COMMIT", logger: logger)
        return result
    }
}

/// Sorts PostgreSQL's failures by type: those that mean "the database is not there just now" become
/// `StoreUnavailable`, named by their cause (`PostgresDiagnosis`); everything else is left as it is, a
/// fault. Also bounds how long an operation may take, since the pool otherwise waits for a connection
/// for as long as the database is down.
struct PostgresAvailability: Sendable {
    /// A store operation is a few small statements: one that takes longer is waiting for a database
    /// that is not there, and the caller hears 503 rather than waiting with it.
    static let operationDeadline: Duration = .seconds(5)

    /// Names the cause once the database is found missing; `nil` says only what was seen.
    let diagnosis: PostgresDiagnosis?

    init(diagnosing url: DatabaseURL?) {
        diagnosis = url.map(PostgresDiagnosis.init)
    }

    private struct Expired: Error {}

    func classifying<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
        do {
            // Answered at the deadline without waiting for `body` to end: a query sent on a connection the
            // database dropped as it stopped can wait on PostgresNIO for longer than the caller may,
            // whatever its cancellation.
            return try await Deadline.answering(within: Self.operationDeadline, orThrowing: { Expired() }, body)
        } catch is Expired {
            throw StoreUnavailable(await diagnosis?.cause() ?? "PostgreSQL did not answer within \(Self.operationDeadline)")
        } catch let error as PSQLError where error.code == .connectionError {
            throw StoreUnavailable(await diagnosis?.cause() ?? "PostgreSQL is unavailable: \(error.code)")
        } catch let error as PSQLError where Self.isUnavailable(error) {
            throw StoreUnavailable("PostgreSQL is unavailable: \(error.code)")
        } catch let error as IOError {
            throw StoreUnavailable(await diagnosis?.cause() ?? "PostgreSQL is unavailable: \(error)")
        }
    }

    /// A deadlock or serialization failure: PostgreSQL rolled the statement back, and it may be tried again.
    static func isRetryable(_ error: PSQLError) -> Bool {
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    static func isUnavailable(_ error: PSQLError) -> Bool {
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .queryCancelled,
            .sslUnsupported, .failedToAddSSLHandler:
            return true
        case .server:
            // Class 08: connection exception; 57P01-03: shutting down or starting up; 53: out of resources.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57P0") || state.hasPrefix("53")
        default:
            return false
        }
    }
}

/// PostgreSQL's own errors, and its client's, are faults of the store.
extension PSQLError: DatabaseFailure {}

import ExternalProviderCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why PostgreSQL cannot be reached, in words an operator can act on. The pool behind a store keeps
/// retrying a database it cannot connect to, so what its callers see is only that nothing answered in
/// time, whether the server refused the connection, refused TLS, refused the credentials, has no such
/// database, or is silent. When that happens, one connection of its own is tried and its failure named.
/// A diagnosis is kept for a few seconds, and one is made at a time, so an outage answered 503 to many
/// requests costs a few connection attempts, not one per request.
final class PostgresDiagnosis: Sendable {
    static let reuseFor: Duration = .seconds(5)
    static let connectTimeout: TimeAmount = .seconds(3)
    private static let quiet = Logger(label: "external-provider.postgres-diagnosis", factory: { _ in SwiftLogNoOpLogHandler() })

    private let url: DatabaseURL
    private let last = Mutex<(at: ContinuousClock.Instant, cause: String)?>(nil)
    private let running = Mutex<Task<String, Never>?>(nil)

    init(_ url: DatabaseURL) {
        self.url = url
    }

    /// The cause, as a clause: "PostgreSQL at db:5432 refused the connection".
    func cause() async -> String {
        if let last = last.withLock({ $0 }), ContinuousClock.now - last.at < Self.reuseFor { return last.cause }
        let task = running.withLock { running in
            if let running { return running }
            let task = Task { [url] in
                let cause = await Self.tryConnecting(url)
                self.last.withLock { $0 = (ContinuousClock.now, cause) }
                self.running.withLock { $0 = nil }
                return cause
            }
            running = task
            return task
        }
        return await task.value
    }

    /// The connect timeout covers the TCP connection only: a listener that accepts and then says
    /// nothing would hold the startup exchange open for ever, so the whole attempt has a deadline too.
    static let attemptDeadline: Duration = .seconds(4)

    private struct Silent: Error {}

    static func tryConnecting(_ url: DatabaseURL) async -> String {
        var configuration = url.connectionConfiguration
        configuration.options.connectTimeout = connectTimeout
        do {
            let connection = try await Deadline.answering(within: attemptDeadline, orThrowing: { Silent() }) { [configuration] in
                try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: quiet
                ).get()
            }
            try? await connection.close()
            return "PostgreSQL at \(url.address) accepts connections but did not answer in time"
        } catch is Silent {
            return "PostgreSQL at \(url.address) did not answer within \(attemptDeadline.components.seconds) s"
        } catch {
            return cause(of: error, url: url)
        }
    }

    /// Sorts a failed connection attempt by the error's type and PostgreSQL's SQLSTATE.
    static func cause(of error: any Error, url: DatabaseURL) -> String {
        let address = url.address
        if let error = error as? PSQLError {
            switch error.code {
            case .sslUnsupported:
                return "PostgreSQL at \(address) does not offer TLS, which sslmode=\(url.sslMode.rawValue) requires"
            case .failedToAddSSLHandler:
                return "the TLS connection to PostgreSQL at \(address) could not be set up"
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                switch state {
                case "28P01", "28000":
                    return "PostgreSQL at \(address) refused the credentials of user '\(url.username)'"
                case "3D000":
                    return "PostgreSQL at \(address) has no database '\(url.database ?? url.username)'"
                case let state where state.hasPrefix("57P0"):
                    return "PostgreSQL at \(address) is starting up or shutting down"
                case "53300":
                    return "PostgreSQL at \(address) has no connection slot left"
                default:
                    return "PostgreSQL at \(address) refused the connection (SQLSTATE \(state))"
                }
            default:
                if let underlying = error.underlying { return cause(of: underlying, url: url) }
                return "PostgreSQL at \(address) could not be reached (\(error.code))"
            }
        }
        switch error {
        case let error as NIOConnectionError:
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            if refused { return "PostgreSQL at \(address) refused the connection: nothing listens there" }
            if error.dnsAAAAError != nil || error.dnsAError != nil, error.connectionErrors.isEmpty {
                return "the host of PostgreSQL, \(url.host), could not be resolved"
            }
            return "no connection to PostgreSQL at \(address) could be made"
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            return "PostgreSQL at \(address) refused the connection: nothing listens there"
        case let error as ChannelError:
            if case .connectTimeout = error {
                return "PostgreSQL at \(address) did not answer within \(connectTimeout.nanoseconds / 1_000_000_000) s"
            }
            return "the connection to PostgreSQL at \(address) failed (\(error))"
        case is NIOSSLError, is BoringSSLError:
            return "the TLS handshake with PostgreSQL at \(address) failed"
        default:
            return "PostgreSQL at \(address) could not be reached (\(type(of: error)))"
        }
    }
}

import Foundation
import NIOSSL
import PostgresNIO

/// `postgres://user:password@host:port/database?sslmode=…`, as `--database-url` and `DATABASE_URL` give
/// it. TLS follows libpq's `sslmode`: `disable`; `prefer` (the default, as in libpq); `require`,
/// `verify-ca` and `verify-full`, which all verify the server's certificate against the system's roots.
public struct DatabaseURL: Sendable, Equatable {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public let host: String
    public let port: Int
    public let username: String
    public let password: String?
    public let database: String?
    public let sslMode: SSLMode

    public init(_ text: String) throws(DatabaseURLError) {
        guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw .malformed("it must look like postgres://user:password@host:5432/database")
        }
        guard let host = components.host, !host.isEmpty else { throw .malformed("it names no host") }
        guard let username = components.user, !username.isEmpty else { throw .malformed("it names no user") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = username.removingPercentEncoding ?? username
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? SSLMode.prefer.rawValue
        guard let sslMode = SSLMode(rawValue: mode) else {
            throw .malformed("sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.sslMode = sslMode
    }

    /// The URL with its password hidden, for messages and logs.
    public var redacted: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database ?? "")?sslmode=\(sslMode.rawValue)"
    }

    /// How long a pooled connection may sit idle before it is closed, for the reason beside its use.
    static let poolIdleTimeout: Duration = .seconds(5)

    /// `host:port`, for messages.
    var address: String { "\(host):\(port)" }

    /// One connection of its own, for a diagnosis.
    var connectionConfiguration: PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            switch sslMode {
            case .disable: .disable
            case .allow, .prefer: .prefer(try! .init(configuration: .makeClientConfiguration()))
            case .require, .verifyCA, .verifyFull: .require(try! .init(configuration: .makeClientConfiguration()))
            }
        return PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
    }

    var clientConfiguration: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS =
            switch sslMode {
            case .disable: .disable
            case .allow, .prefer: .prefer(.makeClientConfiguration())
            case .require, .verifyCA, .verifyFull: .require(.makeClientConfiguration())
            }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(3)
        // Each time a connection goes back to the pool, PostgresNIO starts its keep-alive timer and, above
        // the minimum, its idle timer, as sleeping tasks that the next lease cancels; a cancelled sleep
        // keeps its memory until its deadline would have come (swiftlang/swift#60441). So there is no
        // keep-alive, and connections idle for a short while are closed, which also means none sits idle
        // long enough to go stale behind a firewall. bench/postgres-memory and bench/postgres-shutdown
        // show why these two values (bench/README.md).
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = Self.poolIdleTimeout
        return configuration
    }
}

public enum DatabaseURLError: Error, Equatable, CustomStringConvertible {
    case malformed(String)

    public var description: String {
        switch self {
        case .malformed(let why): "not a PostgreSQL URL: \(why)"
        }
    }
}

import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderSQLite
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

/// The stores every conformance test runs against: SQLite always, PostgreSQL when the test command gave
/// it a cluster (`EXTERNAL_PROVIDER_TEST_DATABASE_URL`, which `scripts/test` always sets).
public enum StoreKind: String, CaseIterable, Sendable {
    case sqlite
    case postgres

    public static var testDatabaseURL: DatabaseURL? {
        ProcessInfo.processInfo.environment["EXTERNAL_PROVIDER_TEST_DATABASE_URL"].flatMap { try? DatabaseURL($0) }
    }

    public static var available: [StoreKind] { testDatabaseURL == nil ? [.sqlite] : [.sqlite, .postgres] }

}

public typealias FullStore = ServingStore

/// A new, empty store of one kind for one test, which `reopen` opens again as a second process would:
/// a new SQLite store on the same file, or a new client on the same PostgreSQL database.
public struct StoreUnderTest: Sendable {
    public let kind: StoreKind
    public let masterKey: MasterKey
    private let path: String?
    private let url: DatabaseURL?
    public static let logger = Logger(label: "store-test")

    /// Runs `body` with a store of `kind` on a place of its own: a temporary file, or a new database.
    public static func with<Result: Sendable>(
        _ kind: StoreKind, masterKey: MasterKey = .generate(), _ body: @Sendable (StoreUnderTest) async throws -> Result
    ) async throws -> Result {
        switch kind {
        case .sqlite:
            let directory = try TemporaryDirectory()
            return try await body(StoreUnderTest(kind: kind, masterKey: masterKey, path: directory.file("store.sqlite"), url: nil))
        case .postgres:
            guard let server = StoreKind.testDatabaseURL else { throw NoTestDatabase() }
            let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try await PostgresKeyStore.withClient(server, logger: logger) { client in
                try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            }
            let url = try DatabaseURL("postgres://\(server.username)@\(server.host):\(server.port)/\(name)?sslmode=disable")
            let result: Result
            do {
                result = try await body(StoreUnderTest(kind: kind, masterKey: masterKey, path: nil, url: url))
            } catch {
                try? await drop(name, on: server)
                throw error
            }
            try await drop(name, on: server)
            return result
        }
    }

    private static func drop(_ name: String, on server: DatabaseURL) async throws {
        try await PostgresKeyStore.withClient(server, logger: logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
        }
    }

    /// A PostgreSQL client on this test's database, running for the call.
    public func withPostgresClient<Result: Sendable>(_ body: @Sendable (PostgresClient) async throws -> Result) async throws -> Result {
        guard let url else { throw NoTestDatabase() }
        return try await PostgresKeyStore.withClient(url, logger: Self.logger, body)
    }

    /// Opens the store (again) and runs `body` with it.
    public func open<Result: Sendable>(masterKey: MasterKey? = nil, _ body: @Sendable (any FullStore) async throws -> Result) async throws -> Result {
        let key = masterKey ?? self.masterKey
        if let path {
            return try await body(try SQLiteKeyStore(path: path, masterKey: key))
        }
        guard let url else { throw NoTestDatabase() }
        return try await PostgresKeyStore.withStore(url, masterKey: key, migrate: true, logger: Self.logger) { try await body($0) }
    }
}

/// A test asked for PostgreSQL, and the test command named no cluster.
public struct NoTestDatabase: Error {}

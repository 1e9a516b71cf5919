import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// The stores every conformance test runs against: SQLite always, PostgreSQL when the test command gave
/// it a cluster (`EXTERNAL_PROVIDER_TEST_DATABASE_URL`, which `scripts/test` always sets).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    static var testDatabaseURL: DatabaseURL? {
        ProcessInfo.processInfo.environment["EXTERNAL_PROVIDER_TEST_DATABASE_URL"].flatMap { try? DatabaseURL($0) }
    }

    static var available: [StoreKind] { testDatabaseURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var testDescription: String { rawValue }
}

typealias FullStore = KeyStore & ApplicationRegistry

/// A new, empty store of one kind for one test, which `reopen` opens again as a second process would:
/// a new SQLite store on the same file, or a new client on the same PostgreSQL database.
struct StoreUnderTest: Sendable {
    let kind: StoreKind
    let masterKey: MasterKey
    private let path: String?
    private let url: DatabaseURL?
    static let logger = Logger(label: "store-test")

    /// Runs `body` with a store of `kind` on a place of its own: a temporary file, or a new database.
    static func with<Result: Sendable>(
        _ kind: StoreKind, masterKey: MasterKey = .generate(), _ body: @Sendable (StoreUnderTest) async throws -> Result
    ) async throws -> Result {
        switch kind {
        case .sqlite:
            let directory = try TemporaryDirectory()
            return try await body(StoreUnderTest(kind: kind, masterKey: masterKey, path: directory.file("store.sqlite"), url: nil))
        case .postgres:
            let server = try #require(StoreKind.testDatabaseURL)
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
    func withPostgresClient<Result: Sendable>(_ body: @Sendable (PostgresClient) async throws -> Result) async throws -> Result {
        try await PostgresKeyStore.withClient(try #require(url), logger: Self.logger, body)
    }

    /// Opens the store (again) and runs `body` with it.
    func open<Result: Sendable>(masterKey: MasterKey? = nil, _ body: @Sendable (any FullStore) async throws -> Result) async throws -> Result {
        let key = masterKey ?? self.masterKey
        if let path {
            return try await body(try SQLiteKeyStore(path: path, masterKey: key))
        }
        return try await PostgresKeyStore.withStore(try #require(url), masterKey: key, migrate: true, logger: Self.logger) { try await body($0) }
    }
}

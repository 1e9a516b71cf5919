import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderStore
import Foundation
import Logging
import ServiceLifecycle

/// Where the keys live: the embedded SQLite store in a data dir (the default), or a PostgreSQL database
/// that several instances share. Every command resolves it from its `Settings` the same way.
public enum StoreLocation: Sendable, Equatable {
    case dataDirectory(String)
    case postgres(DatabaseURL)

    /// For the log: the data dir, or the database with its password hidden.
    public var description: String {
        switch self {
        case .dataDirectory(let path): path
        case .postgres(let url): url.redacted
        }
    }

    /// `--database-url`, else `DATABASE_URL`, selects PostgreSQL; otherwise the data dir.
    public init(_ settings: Settings) throws {
        if let text = settings.text(.databaseURL) {
            do {
                self = .postgres(try DatabaseURL(text))
            } catch {
                throw ServeFailure(error.description)
            }
        } else {
            self = .dataDirectory(settings.dataDirectory)
        }
    }

    /// In PostgreSQL mode the master key is given, never made: every instance must use the same one.
    static func givenMasterKey(file: String?, environment: [String: String]) throws -> MasterKey {
        let source = MasterKeySource.choose(file: file, environment: environment, dataDirectory: "")
        guard source != .dataDirectory("") else {
            throw ServeFailure(
                "with --database-url the master key must be given, the same to every instance: --master-key-file or \(MasterKeySource.environmentVariable)")
        }
        do {
            return try source.load(environment: environment).key
        } catch {
            throw ServeFailure(opening: error) ?? error
        }
    }

    /// Runs `body` with the store, for a command that runs and ends (`apps`, `keys`, `migrate`). Migrates a
    /// PostgreSQL database only when `migrate` is set; otherwise one at another data version is refused.
    public func withStore<Result: Sendable>(
        masterKeyFile: String?, environment: [String: String], migrate: Bool, logger: Logger,
        _ body: @Sendable (any KeyStore & ApplicationRegistry) async throws -> Result
    ) async throws -> Result {
        switch self {
        case .dataDirectory(let path):
            return try await body(try await DataDirectory(path).openStore(masterKeyFile: masterKeyFile, environment: environment, logger: logger))
        case .postgres:
            return try await withPostgresStore(masterKeyFile: masterKeyFile, environment: environment, migrate: migrate, logger: logger) {
                try await body($0)
            }
        }
    }

    /// A store's refusal to open (a newer schema, another master key, an outdated database) is one line.
    static func servingFaults<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw ServeFailure(opening: error) ?? error
        }
    }
}

extension ServeFailure {
    /// The one line for a store, master key or data dir that cannot be used, or `nil` for any other error.
    init?(opening error: any Error) {
        switch error {
        case let fault as StoreFault: self.init(fault.description)
        case let refusal as UnsafePath: self.init("refusing the master key: \(refusal)")
        case let unavailable as StoreUnavailable: self.init("cannot reach the database: \(unavailable)")
        default: return nil
        }
    }
}

/// The store `serve` uses, the services it needs running, and what must happen before the first request.
struct ServingStore {
    let store: any KeyStore & ApplicationRegistry
    let services: [any Service]
    /// Migrations and checks that need the services running.
    let prepare: @Sendable () async throws -> Void
}

extension StoreLocation {
    func openForServing(masterKeyFile: String?, environment: [String: String], migrate: Bool, logger: Logger) async throws -> ServingStore {
        switch self {
        case .dataDirectory(let path):
            let dataDirectory = DataDirectory(path)
            let store = try await dataDirectory.openStore(masterKeyFile: masterKeyFile, environment: environment, logger: logger)
            if try await dataDirectory.ensureDefaultApplication(store) {
                // The id itself is never logged: the log may go to a journal others read.
                logger.notice(
                    "registered application 'default'; its X-Application-ID is in the file below (mode 0600) for local clients",
                    metadata: ["path": "\(dataDirectory.file(DataDirectory.applicationIDFileName))"])
            }
            return ServingStore(store: store, services: [], prepare: {})
        case .postgres(let url):
            let key = try Self.givenMasterKey(file: masterKeyFile, environment: environment)
            let client = PostgresKeyStore.makeClient(url, logger: logger)
            let store = PostgresKeyStore(client: client, masterKey: key, diagnosing: url, logger: logger)
            return ServingStore(store: store, services: [client]) {
                try await Self.servingFaults { try await store.prepare(migrate: migrate) }
                logger.info("serving from PostgreSQL", metadata: ["database": "\(url.redacted)"])
            }
        }
    }
}

extension StoreLocation {
    /// Runs `body` with the PostgreSQL store itself, for what only it offers (its master key rotation).
    public func withPostgresStore<Result: Sendable>(
        masterKeyFile: String?, environment: [String: String], migrate: Bool = false, logger: Logger,
        _ body: @Sendable (PostgresKeyStore) async throws -> Result
    ) async throws -> Result {
        guard case .postgres(let url) = self else { throw ServeFailure("this needs --database-url") }
        let key = try Self.givenMasterKey(file: masterKeyFile, environment: environment)
        return try await Self.servingFaults {
            try await PostgresKeyStore.withStore(url, masterKey: key, migrate: migrate, logger: logger) { try await body($0) }
        }
    }
}

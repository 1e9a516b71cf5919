import ExternalProviderCore
import ExternalProviderPostgres
import ExternalProviderSQLite
import ExternalProviderStore
import Foundation
import Logging
import ServiceLifecycle

/// Where the keys live and what opens them: the embedded SQLite store in a data dir (the default), or a
/// PostgreSQL database that several instances share, with the master key to open either. Every command
/// resolves it from its `Settings` the same way, and opens its store only through it.
public struct StoreLocation: Sendable {
    public enum Place: Sendable, Equatable {
        case dataDirectory(String)
        case postgres(DatabaseURL)
    }

    public let place: Place
    /// `--master-key-file`; without it, `EXTERNAL_PROVIDER_MASTER_KEY`, else the data dir's `master.key`.
    let masterKeyFile: String?
    let environment: [String: String]

    /// `--database-url`, else `DATABASE_URL`, selects PostgreSQL; otherwise the data dir.
    public init(_ settings: Settings) throws(Fault) {
        if let text = try settings.value(StoreSettings.databaseURL) {
            do {
                place = .postgres(try DatabaseURL(text))
            } catch {
                throw Fault(.start, "\(StoreSettings.databaseURL.declaration.names) is \(error.description)")
            }
        } else {
            place = .dataDirectory(try settings.value(StoreSettings.dataDir))
        }
        masterKeyFile = try settings.value(StoreSettings.masterKeyFile)
        environment = settings.environment
    }

    /// For the log: the data dir, or the database with its password hidden.
    public var description: String {
        switch place {
        case .dataDirectory(let path): path
        case .postgres(let url): url.redacted
        }
    }

    /// Whether the master key comes from outside the data dir (a file or the environment), so that a
    /// rotation leaves putting the new one in place to the operator.
    public var masterKeyIsGiven: Bool {
        masterKeyFile != nil || environment[MasterKeySource.environmentVariable] != nil
    }

    /// Runs `body` with the store, for a command that runs and ends (`apps`, `keys`, `migrate`). Migrates a
    /// PostgreSQL database only when `migrate` is set; otherwise one at another data version is refused.
    public func withStore<Result: Sendable>(
        migrate: Bool, logger: Logger, _ body: @Sendable (any ServingStore) async throws -> Result
    ) async throws -> Result {
        switch place {
        case .dataDirectory(let path):
            return try await body(try await DataDirectory(path).openStore(masterKeyFile: masterKeyFile, environment: environment, logger: logger))
        case .postgres(let url):
            let key = try givenMasterKey()
            return try await Self.oneLine {
                try await PostgresKeyStore.withStore(url, masterKey: key, migrate: migrate, logger: logger) { try await body($0) }
            }
        }
    }

    /// Re-seals every stored key under `newKey`; returns how many. When the current key is the data dir's
    /// `master.key`, the new key replaces it there.
    public func rotateMasterKey(to newKey: MasterKey, logger: Logger) async throws -> Int {
        switch place {
        case .dataDirectory(let path):
            return try await DataDirectory(path).rotateMasterKey(to: newKey, masterKeyFile: masterKeyFile, environment: environment, logger: logger)
        case .postgres(let url):
            let key = try givenMasterKey()
            return try await Self.oneLine {
                try await PostgresKeyStore.withStore(url, masterKey: key, migrate: false, logger: logger) { try await $0.rotateMasterKey(to: newKey) }
            }
        }
    }

    /// Brings the store to this version's data version; returns the PostgreSQL migrations it applied
    /// (the data dir's store migrates as it opens).
    public func migrate(logger: Logger) async throws -> [Int] {
        switch place {
        case .dataDirectory:
            try await withStore(migrate: true, logger: logger) { _ in }
            return []
        case .postgres(let url):
            return try await Self.oneLine {
                try await PostgresKeyStore.withClient(url, logger: logger) { client in
                    try await PostgresKeyStore.migrate(client: client, diagnosing: url, logger: logger)
                }
            }
        }
    }

    /// The store `serve` uses, the services it needs running, and what must happen before the first request.
    public struct Serving: Sendable {
        public let store: any ServingStore
        public let services: [any Service]
        /// Migrations and checks that need the services running.
        public let prepare: @Sendable () async throws -> Void
    }

    public func openForServing(migrate: Bool, logger: Logger) async throws -> Serving {
        switch place {
        case .dataDirectory(let path):
            let dataDirectory = DataDirectory(path)
            let store = try await dataDirectory.openStore(masterKeyFile: masterKeyFile, environment: environment, logger: logger)
            if try await dataDirectory.ensureDefaultApplication(store) {
                // The id itself is never logged: the log may go to a journal others read.
                logger.notice(
                    "registered application 'default'; its X-Application-ID is in the file below (mode 0600) for local clients",
                    metadata: ["path": "\(dataDirectory.file(DataDirectory.applicationIDFileName))"])
            }
            return Serving(store: store, services: [], prepare: {})
        case .postgres(let url):
            let key = try givenMasterKey()
            let client = PostgresKeyStore.makeClient(url, logger: logger)
            let store = PostgresKeyStore(client: client, masterKey: key, diagnosing: url, logger: logger)
            return Serving(store: store, services: [client]) {
                try await Self.oneLine { try await store.prepare(migrate: migrate) }
                logger.info("serving from PostgreSQL", metadata: ["database": "\(url.redacted)"])
            }
        }
    }

    /// In PostgreSQL mode the master key is given, never made: every instance must use the same one.
    private func givenMasterKey() throws -> MasterKey {
        let source = MasterKeySource.choose(file: masterKeyFile, environment: environment, dataDirectory: "")
        guard source != .dataDirectory("") else {
            throw Fault(
                .start,
                "with \(StoreSettings.databaseURL.declaration.option) the master key must be given, the same to every instance: \(StoreSettings.masterKeyFile.declaration.option) or \(MasterKeySource.environmentVariable)")
        }
        return try Self.oneLine { try source.load(environment: environment).key }
    }

    /// A store's refusal to open (a newer schema, another master key, an outdated database, a database out
    /// of reach) as the one line a command exits with.
    static func oneLine<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw Fault.opening(error) ?? error
        }
    }

    static func oneLine<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch {
            throw Fault.opening(error) ?? error
        }
    }
}

extension Fault {
    /// The one line for a store, master key or data dir that cannot be used, or `nil` for any other error.
    static func opening(_ error: any Error) -> Fault? {
        switch error {
        case let fault as Fault: Fault(.start, fault.description)
        case let refusal as UnsafePath: Fault(.start, "refusing the master key: \(refusal)")
        case let unavailable as StoreUnavailable: Fault(.start, "cannot reach the database: \(unavailable)")
        default: nil
        }
    }
}

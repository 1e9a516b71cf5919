import ExternalProviderCore
import ExternalProviderStore
import Logging
import PostgresNIO

extension PostgresKeyStore {
    /// Runs `body` with a client that runs only for the call, for commands (`migrate`, `apps …`) and tests;
    /// `serve` runs its client as a service of the application instead.
    public static func withClient<Result: Sendable>(
        _ url: DatabaseURL, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = makeClient(url, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// `withClient`, with the store open on it.
    public static func withStore<Result: Sendable>(
        _ url: DatabaseURL, masterKey: MasterKey, migrate: Bool, logger: Logger, _ body: @Sendable (PostgresKeyStore) async throws -> Result
    ) async throws -> Result {
        try await withClient(url, logger: logger) { client in
            try await body(try await open(client: client, masterKey: masterKey, diagnosing: url, migrate: migrate, logger: logger))
        }
    }
}

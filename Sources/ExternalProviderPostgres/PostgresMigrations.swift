import ExternalProviderCore
import ExternalProviderStore
import Logging
import PostgresNIO

/// The PostgreSQL schema, as numbered migrations that are never edited once shipped. Each names the
/// `DataVersion` it brings the database to. They run in one transaction under an advisory lock, so
/// instances that start together apply each exactly once.
enum PostgresMigrations {
    struct Migration {
        let version: Int
        let name: String
        let dataVersion: Int
        let statements: [String]
    }

    /// The advisory lock (class, object) that migrations hold; `PostgresKeyStore.userLockClass` is another.
    static let lockClass: Int32 = 0x4550_0001
    static let tableName = "external_provider_migration"

    static let all: [Migration] = [
        Migration(
            version: 1, name: "accounts, sealed provider keys with health, applications with scopes", dataVersion: 2,
            statements: [
                """
                CREATE TABLE user_account (
                    user_id TEXT PRIMARY KEY,
                    global_id UUID NOT NULL UNIQUE,
                    created_at TIMESTAMPTZ NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1)
                """,
                """
                CREATE TABLE provider_key (
                    user_id TEXT NOT NULL REFERENCES user_account (user_id) ON DELETE CASCADE,
                    provider TEXT NOT NULL,
                    api_key BYTEA NOT NULL,
                    api_key_name TEXT,
                    organization_key BYTEA,
                    verified_at TIMESTAMPTZ,
                    created_at TIMESTAMPTZ NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL,
                    health TEXT NOT NULL DEFAULT 'unverified',
                    health_checked_at TIMESTAMPTZ,
                    health_code TEXT,
                    PRIMARY KEY (user_id, provider))
                """,
                "CREATE INDEX provider_key_health_checked_at ON provider_key (health_checked_at)",
                """
                CREATE TABLE application (
                    name TEXT PRIMARY KEY,
                    id_hash BYTEA NOT NULL UNIQUE,
                    created_at TIMESTAMPTZ NOT NULL,
                    revoked_at TIMESTAMPTZ,
                    scopes TEXT NOT NULL,
                    bound_user TEXT)
                """,
                "CREATE TABLE store_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
            ]),
        Migration(version: 2, name: "audit trail", dataVersion: 3, statements: PostgresAuditTable.migration),
        Migration(
            version: 3, name: "deferred key checks", dataVersion: 4,
            statements: [
                // When a key's next check may run, after a check that got no answer; NULL: whenever it is due.
                "ALTER TABLE provider_key ADD COLUMN recheck_after TIMESTAMPTZ",
            ]),
        Migration(
            version: 4, name: "the providers an audited change touched", dataVersion: 5,
            statements: [
                // The stored names of the providers whose key changed (`open_ai,anthropic`); NULL before.
                "ALTER TABLE audit_event ADD COLUMN providers TEXT",
            ]),
        Migration(
            version: 5, name: "application policies, usage ledger", dataVersion: 6,
            statements: PostgresKeyStore.policyAndUsageMigration),
    ]

    /// Applies what is missing; returns the versions applied. Refuses a database a newer version migrated.
    static func apply(on client: PostgresClient, availability: PostgresAvailability, logger: Logger) async throws -> [Int] {
        try await PostgresTransaction.run(on: client, availability: availability, logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockClass), 0)", logger: logger)
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    CREATE TABLE IF NOT EXISTS \(tableName) (
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL, data_version INTEGER NOT NULL,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """), logger: logger)
            let applied = try await appliedVersions(connection, logger: logger)
            if let newest = applied.max(), newest > (all.last?.version ?? 0) {
                throw Fault(.store, "the database was migrated by a newer version of external-provider (migration \(newest)); upgrade it to use this database")
            }
            var done: [Int] = []
            for migration in all where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO external_provider_migration (version, name, data_version) VALUES (\(migration.version), \(migration.name), \(migration.dataVersion))",
                    logger: logger)
                done.append(migration.version)
            }
            return done
        }
    }

    /// The data version the applied migrations brought the database to; 0 for an empty database.
    static func dataVersion(on client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withConnection { connection in
            let exists = try await connection.query("SELECT to_regclass('external_provider_migration') IS NOT NULL", logger: logger)
                .decode(Bool.self).first { _ in true } ?? false
            guard exists else { return 0 }
            let rows = try await connection.query("SELECT max(data_version) FROM external_provider_migration", logger: logger)
            return try await rows.decode(Int?.self).first { _ in true }.flatMap { $0 } ?? 0
        }
    }

    private static func appliedVersions(_ connection: PostgresConnection, logger: Logger) async throws -> Set<Int> {
        var versions: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM external_provider_migration", logger: logger).decode(Int.self) {
            versions.insert(version)
        }
        return versions
    }
}

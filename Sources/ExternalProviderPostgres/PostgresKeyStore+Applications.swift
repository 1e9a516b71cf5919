import ExternalProviderCore
import ExternalProviderStore
import Foundation
import PostgresNIO

extension PostgresKeyStore: ApplicationRegistry {
    public func registerApplication(
        named name: String, scopes: Set<ApplicationScope>, boundUser: String?, policy: ApplicationPolicy
    ) async throws -> String {
        let (id, hash) = try ApplicationID.newApplication(named: name, scopes: scopes)
        let limits = PolicyColumns(policy)
        let inserted = try await transaction { [logger] connection in
            let rows = try await connection.query(
                """
                INSERT INTO application (name, id_hash, created_at, scopes, bound_user,
                    models, providers, expires_at, rpm, tokens_per_day, tokens_per_month)
                VALUES (\(name), \(hash), \(Date()), \(ApplicationScope.stored(scopes)), \(boundUser),
                    \(limits.models), \(limits.providers), \(limits.expiresAt), \(limits.requestsPerMinute), \(limits.tokensPerDay),
                    \(limits.tokensPerMonth))
                ON CONFLICT (name) DO NOTHING RETURNING name
                """, logger: logger)
            guard try await rows.decode(String.self).first(where: { _ in true }) != nil else { return false }
            let fields = PolicyColumns.changedFields(from: .unlimited, to: policy)
            try await PostgresAuditTable.append(
                .storeChange(.appsCreate, application: name, boundUser: boundUser, fields: fields), on: connection, logger: logger)
            return true
        }
        guard inserted else { throw ApplicationError.nameTaken(name) }
        return id
    }

    public func applications() async throws -> [RegisteredApplication] {
        try await availability.classifying { [client, logger] in
            let rows = try await client.query(
                "SELECT name, created_at, revoked_at, scopes, bound_user, \(unescaped: PolicyRow.columns) FROM application ORDER BY created_at",
                logger: logger)
            var applications: [RegisteredApplication] = []
            for try await row in rows {
                let (name, createdAt, revokedAt, scopes, boundUser) = try row.decode((String, Date, Date?, String, String?).self)
                applications.append(RegisteredApplication(
                    name: name, createdAt: createdAt, revokedAt: revokedAt, scopes: ApplicationScope.parse(stored: scopes), boundUser: boundUser,
                    policy: try PolicyRow.policy(in: row, from: 5)))
            }
            return applications
        }
    }

    public func revokeApplication(named name: String) async throws -> Bool {
        try await transaction { [logger] connection in
            let rows = try await connection.query(
                "UPDATE application SET revoked_at = \(Date()) WHERE name = \(name) AND revoked_at IS NULL RETURNING name", logger: logger)
            guard try await rows.decode(String.self).first(where: { _ in true }) != nil else { return false }
            try await PostgresAuditTable.append(.storeChange(.appsRevoke, application: name), on: connection, logger: logger)
            return true
        }
    }

    public func updateApplication(
        named name: String, _ change: @escaping @Sendable (ApplicationPolicy) -> ApplicationPolicy
    ) async throws -> ApplicationPolicy? {
        try await transaction { [logger] connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: PolicyRow.columns) FROM application WHERE name = \(name) AND revoked_at IS NULL FOR UPDATE", logger: logger)
            var old: ApplicationPolicy?
            for try await row in rows { old = try PolicyRow.policy(in: row, from: 0) }
            guard let old else { return nil }
            let new = change(old)
            let fields = PolicyColumns.changedFields(from: old, to: new)
            guard !fields.isEmpty else { return new }
            let limits = PolicyColumns(new)
            try await connection.query(
                """
                UPDATE application SET models = \(limits.models), providers = \(limits.providers), expires_at = \(limits.expiresAt),
                    rpm = \(limits.requestsPerMinute), tokens_per_day = \(limits.tokensPerDay), tokens_per_month = \(limits.tokensPerMonth)
                WHERE name = \(name)
                """, logger: logger)
            try await PostgresAuditTable.append(.storeChange(.appsUpdate, application: name, fields: fields), on: connection, logger: logger)
            return new
        }
    }

    public func activeApplication(id: String) async throws -> ApplicationGrant? {
        let statement = ActiveApplication(idHash: ApplicationID.hash(id))
        return try await availability.classifying { [client, logger] in
            try await client.withConnection { connection in
                var grant: ApplicationGrant?
                for try await grantFound in try await connection.execute(statement, logger: logger) { grant = grantFound }
                return grant
            }
        }
    }
}

/// An application's policy columns, in `PolicyColumns`' order, as they are selected and read.
enum PolicyRow {
    static let columns = "models, providers, expires_at, rpm, tokens_per_day, tokens_per_month"

    static func policy(in row: PostgresRow, from first: Int) throws -> ApplicationPolicy {
        let cells = Array(row)
        func cell<T: PostgresDecodable>(_ offset: Int, _ type: T.Type) throws -> T? where T._DecodableType == T {
            try cells[first + offset].decode(T?.self)
        }
        return PolicyColumns(
            models: try cell(0, String.self), providers: try cell(1, String.self), expiresAt: try cell(2, Date.self),
            requestsPerMinute: try cell(3, Int.self), tokensPerDay: try cell(4, Int.self), tokensPerMonth: try cell(5, Int.self)
        ).policy
    }
}

/// The unrevoked application whose id hashes to `idHash`: asked on every request with an id not seen
/// valid in the last half second, so prepared, like the account statements.
struct ActiveApplication: PostgresPreparedStatement {
    static let name = "ep_active_application_v6"
    static let sql = "SELECT name, scopes, bound_user, \(PolicyRow.columns) FROM application WHERE id_hash = $1::bytea AND revoked_at IS NULL"
    typealias Row = ApplicationGrant

    let idHash: Data

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        try bindings.append(idHash)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let cells = Array(row)
        let name = try cells[0].decode(String.self)
        let scopes = try cells[1].decode(String.self)
        let boundUser = try cells[2].decode(String?.self)
        return ApplicationGrant(
            name: name, scopes: ApplicationScope.parse(stored: scopes), boundUser: boundUser, policy: try PolicyRow.policy(in: row, from: 3))
    }
}

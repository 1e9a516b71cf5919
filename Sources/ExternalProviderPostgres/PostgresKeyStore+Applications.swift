import ExternalProviderCore
import ExternalProviderStore
import Foundation
import PostgresNIO

extension PostgresKeyStore: ApplicationRegistry {
    public func registerApplication(named name: String, scopes: Set<ApplicationScope>, boundUser: String?) async throws -> String {
        let (id, hash) = try ApplicationID.newApplication(named: name, scopes: scopes)
        let inserted = try await transaction { [logger] connection in
            let rows = try await connection.query(
                """
                INSERT INTO application (name, id_hash, created_at, scopes, bound_user)
                VALUES (\(name), \(hash), \(Date()), \(ApplicationScope.stored(scopes)), \(boundUser))
                ON CONFLICT (name) DO NOTHING RETURNING name
                """, logger: logger)
            guard try await rows.decode(String.self).first(where: { _ in true }) != nil else { return false }
            try await PostgresAuditTable.append(.storeChange(.appsCreate, application: name, boundUser: boundUser), on: connection, logger: logger)
            return true
        }
        guard inserted else { throw ApplicationError.nameTaken(name) }
        return id
    }

    public func applications() async throws -> [RegisteredApplication] {
        try await availability.classifying { [client, logger] in
            let rows = try await client.query(
                "SELECT name, created_at, revoked_at, scopes, bound_user FROM application ORDER BY created_at", logger: logger)
            var applications: [RegisteredApplication] = []
            for try await (name, createdAt, revokedAt, scopes, boundUser) in rows.decode((String, Date, Date?, String, String?).self) {
                applications.append(RegisteredApplication(
                    name: name, createdAt: createdAt, revokedAt: revokedAt, scopes: ApplicationScope.parse(stored: scopes), boundUser: boundUser))
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

    public func activeApplication(id: String) async throws -> ApplicationGrant? {
        let statement = ActiveApplication(idHash: ApplicationID.hash(id))
        return try await availability.classifying { [client, logger] in
            try await client.withConnection { connection in
                var grant: ApplicationGrant?
                for try await (name, scopes, boundUser) in try await connection.execute(statement, logger: logger) {
                    grant = ApplicationGrant(name: name, scopes: ApplicationScope.parse(stored: scopes), boundUser: boundUser)
                }
                return grant
            }
        }
    }
}

/// The unrevoked application whose id hashes to `idHash`: asked on every request with an id not seen
/// valid in the last second, so prepared, like the account statements.
struct ActiveApplication: PostgresPreparedStatement {
    static let name = "ep_active_application"
    static let sql = "SELECT name, scopes, bound_user FROM application WHERE id_hash = $1::bytea AND revoked_at IS NULL"
    typealias Row = (String, String, String?)

    let idHash: Data

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        try bindings.append(idHash)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

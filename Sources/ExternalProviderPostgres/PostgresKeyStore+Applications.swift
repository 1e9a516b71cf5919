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
        try await PostgresAvailability.classifying { [client, logger] in
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
        let hash = ApplicationID.hash(id)
        return try await PostgresAvailability.classifying { [client, logger] in
            let rows = try await client.query(
                "SELECT name, scopes, bound_user FROM application WHERE id_hash = \(hash) AND revoked_at IS NULL", logger: logger)
            for try await (name, scopes, boundUser) in rows.decode((String, String, String?).self) {
                return ApplicationGrant(name: name, scopes: ApplicationScope.parse(stored: scopes), boundUser: boundUser)
            }
            return nil
        }
    }
}

import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

extension SQLiteKeyStore: ApplicationRegistry {
    public func registerApplication(named name: String, scopes: Set<ApplicationScope>, boundUser: String?) async throws -> String {
        let (id, hash) = try ApplicationID.newApplication(named: name, scopes: scopes)
        try await writer.write { db in
            guard try ApplicationRecord.fetchOne(db, key: name) == nil else { throw ApplicationError.nameTaken(name) }
            try ApplicationRecord(
                name: name, idHash: hash, createdAt: Date(), revokedAt: nil,
                scopes: ApplicationScope.stored(scopes), boundUser: boundUser
            ).insert(db)
            try SQLiteAuditTable.append(.storeChange(.appsCreate, application: name, boundUser: boundUser), in: db)
        }
        return id
    }

    public func applications() async throws -> [RegisteredApplication] {
        try await writer.read { db in
            try ApplicationRecord.order(ApplicationRecord.Columns.createdAt).fetchAll(db).map {
                RegisteredApplication(
                    name: $0.name, createdAt: $0.createdAt, revokedAt: $0.revokedAt,
                    scopes: ApplicationScope.parse(stored: $0.scopes), boundUser: $0.boundUser)
            }
        }
    }

    public func revokeApplication(named name: String) async throws -> Bool {
        try await writer.write { db in
            guard var record = try ApplicationRecord.fetchOne(db, key: name), record.revokedAt == nil else { return false }
            record.revokedAt = Date()
            try record.update(db)
            try SQLiteAuditTable.append(.storeChange(.appsRevoke, application: name), in: db)
            return true
        }
    }

    public func activeApplication(id: String) async throws -> ApplicationGrant? {
        let hash = ApplicationID.hash(id)
        return try await writer.read { db in
            try ApplicationRecord
                .filter(ApplicationRecord.Columns.idHash == hash && ApplicationRecord.Columns.revokedAt == nil)
                .fetchOne(db)
                .map { ApplicationGrant(name: $0.name, scopes: ApplicationScope.parse(stored: $0.scopes), boundUser: $0.boundUser) }
        }
    }
}

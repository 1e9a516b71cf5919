import Foundation
import GRDB

extension SQLiteKeyStore: ApplicationRegistry {
    public func registerApplication(named name: String) async throws -> String {
        try ApplicationID.validate(name: name)
        let id = ApplicationID.generate()
        try await writer.write { db in
            guard try ApplicationRecord.fetchOne(db, key: name) == nil else { throw ApplicationError.nameTaken(name) }
            try ApplicationRecord(name: name, idHash: ApplicationID.hash(id), createdAt: Date(), revokedAt: nil).insert(db)
        }
        return id
    }

    public func applications() async throws -> [RegisteredApplication] {
        try await writer.read { db in
            try ApplicationRecord.order(ApplicationRecord.Columns.createdAt).fetchAll(db).map {
                RegisteredApplication(name: $0.name, createdAt: $0.createdAt, revokedAt: $0.revokedAt)
            }
        }
    }

    public func revokeApplication(named name: String) async throws -> Bool {
        try await writer.write { db in
            guard var record = try ApplicationRecord.fetchOne(db, key: name), record.revokedAt == nil else { return false }
            record.revokedAt = Date()
            try record.update(db)
            return true
        }
    }

    public func isActiveApplication(id: String) async throws -> Bool {
        let hash = ApplicationID.hash(id)
        return try await writer.read { db in
            try ApplicationRecord
                .filter(ApplicationRecord.Columns.idHash == hash && ApplicationRecord.Columns.revokedAt == nil)
                .fetchCount(db) > 0
        }
    }
}

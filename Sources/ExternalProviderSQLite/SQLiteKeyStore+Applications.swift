import ExternalProviderCore
import ExternalProviderStore
import Foundation
import GRDB

extension SQLiteKeyStore: ApplicationRegistry {
    public func registerApplication(
        named name: String, scopes: Set<ApplicationScope>, boundUser: String?, policy: ApplicationPolicy
    ) async throws -> String {
        let (id, hash) = try ApplicationID.newApplication(named: name, scopes: scopes)
        try await writer.write { db in
            guard try ApplicationRecord.fetchOne(db, key: name) == nil else { throw ApplicationError.nameTaken(name) }
            var record = ApplicationRecord(
                name: name, idHash: hash, createdAt: Date(), revokedAt: nil, scopes: ApplicationScope.stored(scopes), boundUser: boundUser)
            record.policyColumns = PolicyColumns(policy)
            try record.insert(db)
            let limits = PolicyColumns.changedFields(from: .unlimited, to: policy)
            try SQLiteAuditTable.append(.storeChange(.appsCreate, application: name, boundUser: boundUser, fields: limits), in: db)
        }
        return id
    }

    public func applications() async throws -> [RegisteredApplication] {
        try await writer.read { db in
            try ApplicationRecord.order(ApplicationRecord.Columns.createdAt).fetchAll(db).map {
                RegisteredApplication(
                    name: $0.name, createdAt: $0.createdAt, revokedAt: $0.revokedAt, scopes: ApplicationScope.parse(stored: $0.scopes),
                    boundUser: $0.boundUser, policy: $0.policyColumns.policy)
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

    public func updateApplication(
        named name: String, _ change: @escaping @Sendable (ApplicationPolicy) -> ApplicationPolicy
    ) async throws -> ApplicationPolicy? {
        try await writer.write { db in
            guard var record = try ApplicationRecord.fetchOne(db, key: name), record.revokedAt == nil else { return nil }
            let old = record.policyColumns.policy
            let new = change(old)
            let fields = PolicyColumns.changedFields(from: old, to: new)
            guard !fields.isEmpty else { return new }
            record.policyColumns = PolicyColumns(new)
            try record.update(db)
            try SQLiteAuditTable.append(.storeChange(.appsUpdate, application: name, fields: fields), in: db)
            return new
        }
    }

    public func activeApplication(id: String) async throws -> ApplicationGrant? {
        let hash = ApplicationID.hash(id)
        return try await writer.read { db in
            try ApplicationRecord
                .filter(ApplicationRecord.Columns.idHash == hash && ApplicationRecord.Columns.revokedAt == nil)
                .fetchOne(db)
                .map {
                    ApplicationGrant(
                        name: $0.name, scopes: ApplicationScope.parse(stored: $0.scopes), boundUser: $0.boundUser, policy: $0.policyColumns.policy)
                }
        }
    }
}

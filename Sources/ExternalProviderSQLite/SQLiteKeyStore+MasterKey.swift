import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

extension SQLiteKeyStore {
    /// Re-seals every stored value under `newKey` in one transaction and records the new key's id.
    /// Afterwards the store opens only with `newKey`; this instance, still holding the old key, must not
    /// be used again. Returns the number of key rows re-sealed.
    public func rotateMasterKey(to newKey: MasterKey) async throws -> Int {
        try await writer.write { [codec] db in
            let next = SealedKeyCodec(masterKey: newKey)
            let rows = try ProviderKeyRecord.fetchAll(db)
            for var row in rows {
                try row.reseal(from: codec, to: next)
                try row.update(db)
            }
            try StoreMetaRecord(name: StoreMetaRecord.masterKeyID, value: newKey.idBytes).update(db)
            try SQLiteAuditTable.append(.storeChange(.rotateMasterKey, application: nil), in: db)
            return rows.count
        }
    }

    /// The id of the master key the store at `path` is sealed under, read without any key.
    public static func recordedMasterKeyID(at path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let queue = try DatabaseQueue(path: path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        return try queue.read { db in
            guard try db.tableExists(StoreMetaRecord.databaseTableName) else { return nil }
            return try StoreMetaRecord.fetchOne(db, key: StoreMetaRecord.masterKeyID).map { MasterKey.displayID($0.value) }
        }
    }
}

import ExternalProviderStore
import Foundation
import Logging

/// The data dir holds every key the server keeps: the store, the master key unless it is supplied, and
/// the default application's id. Only its owner may enter it.
public struct DataDirectory: Sendable {
    public static let applicationIDFileName = "application-id"

    public let path: String

    public init(_ path: String) {
        self.path = path
    }

    public var storePath: String { file(storeFileName) }

    func file(_ name: String) -> String {
        (path as NSString).appendingPathComponent(name)
    }

    /// Creates the directory with mode 0700, or warns if an existing one is open to others.
    public func prepare(logger: Logger) throws {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ServeFailure("--data-dir \(path) is a file, not a directory") }
            let mode = (try files.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? 0
            if mode & 0o077 != 0 {
                logger.warning("data dir is open to other users; run chmod 700 on it", metadata: ["path": "\(path)"])
            }
        } else {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }

    /// Resolves the master key (flag, environment, or this directory's `master.key`) and opens the store.
    public func openStore(masterKeyFile: String?, environment: [String: String], logger: Logger) throws -> SQLiteKeyStore {
        do {
            let source = MasterKeySource.choose(file: masterKeyFile, environment: environment, dataDirectory: path)
            if case .dataDirectory = source { try finishInterruptedRotation(logger: logger) }
            let (key, created) = try source.load(environment: environment)
            if created {
                logger.notice("made a new master key; back it up with the data dir", metadata: ["path": "\(file(MasterKeySource.fileName))", "master_key.id": "\(key.id)"])
            }
            return try SQLiteKeyStore(path: storePath, masterKey: key)
        } catch let fault as StoreFault {
            throw ServeFailure(fault.description)
        }
    }

    /// A rotation writes `master.key.next` before it commits and renames it after. If it stopped between
    /// the two, the store says which key is current.
    private func finishInterruptedRotation(logger: Logger) throws {
        let pending = file(MasterKeySource.fileName + ".next")
        guard FileManager.default.fileExists(atPath: pending) else { return }
        let next = try MasterKeySource.file(pending).load(environment: [:]).key
        if try SQLiteKeyStore.recordedMasterKeyID(at: storePath) == next.id {
            try SecretFile.rename(pending, over: file(MasterKeySource.fileName))
            logger.notice("finished an interrupted master key rotation", metadata: ["master_key.id": "\(next.id)"])
        } else {
            try FileManager.default.removeItem(atPath: pending)
        }
    }

    /// Re-seals the store under `newKey`. When the current key lives in this directory, the new key
    /// replaces it there, in an order that survives a crash at any point.
    public func rotateMasterKey(to newKey: MasterKey, masterKeyFile: String?, environment: [String: String], logger: Logger) async throws -> Int {
        let store = try openStore(masterKeyFile: masterKeyFile, environment: environment, logger: logger)
        let source = MasterKeySource.choose(file: masterKeyFile, environment: environment, dataDirectory: path)
        let keepsKeyHere = source == .dataDirectory(path)
        let pending = file(MasterKeySource.fileName + ".next")
        if keepsKeyHere { try SecretFile.writeAtomically(newKey.base64 + "\n", to: pending) }
        let count = try await store.rotateMasterKey(to: newKey)
        if keepsKeyHere { try SecretFile.rename(pending, over: file(MasterKeySource.fileName)) }
        return count
    }

    /// On a first start with no application registered, makes `default`, writes its id to
    /// `application-id` (mode 0600) for local clients, and returns it so it can be shown once.
    public func ensureDefaultApplication(_ registry: some ApplicationRegistry) async throws -> String? {
        guard try await registry.applications().isEmpty else { return nil }
        let id = try await registry.registerApplication(named: "default")
        try SecretFile.writeAtomically(id + "\n", to: file(Self.applicationIDFileName))
        return id
    }
}

/// Why `serve` cannot start, said in one line that also says what to do.
public struct ServeFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

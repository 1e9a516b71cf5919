import ExternalProviderCore
import ExternalProviderSQLite
import ExternalProviderStore
import Foundation
import Logging

/// The data dir holds every key the server keeps: the store, the master key unless it is supplied, and
/// the default application's id. Only its owner may enter it, and every change to what it holds (a first
/// start, a rotation) happens under its lock, so processes that start together agree on one master key.
public struct DataDirectory: Sendable {
    public static let applicationIDFileName = "application-id"
    /// The name of the SQLite file inside the data dir.
    public static let storeFileName = "external-provider.sqlite"

    public let path: String

    public init(_ path: String) {
        self.path = path
    }

    public var storePath: String { file(Self.storeFileName) }

    func file(_ name: String) -> String {
        (path as NSString).appendingPathComponent(name)
    }

    /// Every file the server keeps here; each must be a plain file of the owner's, closed to others.
    private var privateFiles: [String] {
        [
            MasterKeySource.fileName, MasterKeySource.pendingFileName, Self.storeFileName, Self.storeFileName + "-wal",
            Self.storeFileName + "-shm", Self.storeFileName + "-journal", Self.applicationIDFileName, DirectoryLock.fileName,
        ].map(file)
    }

    /// Creates the directory with mode 0700, and refuses one that another user owns or may enter, and any
    /// file in it that another user owns, may read or write, or that is a link to somewhere else.
    public func prepare() throws {
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            if errno == ENOENT {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } else {
                throw Fault(.start, "cannot create the data dir \(path): \(String(cString: strerror(errno)))")
            }
        }
        do {
            try PrivatePath.checkDirectory(path)
        } catch {
            throw Fault(.start, "refusing the data dir: \(error)")
        }
    }

    /// Runs `body` holding the data dir's lock, after checking the dir and every file in it.
    private func locked<T>(_ body: () async throws -> T) async throws -> T {
        try prepare()
        let lock: DirectoryLock
        do {
            lock = try await DirectoryLock.acquire(directory: path)
            for file in privateFiles { try PrivatePath.checkFileIfPresent(file) }
        } catch let refusal as UnsafePath {
            throw Fault(.start, "refusing the data dir: \(refusal)")
        }
        // The lock is released when `lock` is freed, after the body.
        defer { withExtendedLifetime(lock) {} }
        do {
            return try await body()
        } catch {
            throw Fault.opening(error) ?? error
        }
    }

    /// Resolves the master key (flag, environment, or this directory's `master.key`) and opens the store.
    public func openStore(masterKeyFile: String?, environment: [String: String], logger: Logger) async throws -> SQLiteKeyStore {
        try await locked { try openStoreHoldingLock(masterKeyFile: masterKeyFile, environment: environment, logger: logger) }
    }

    private func openStoreHoldingLock(masterKeyFile: String?, environment: [String: String], logger: Logger) throws -> SQLiteKeyStore {
        let source = MasterKeySource.choose(file: masterKeyFile, environment: environment, dataDirectory: path)
        if case .dataDirectory = source { try finishInterruptedRotation(logger: logger) }
        let (key, created) = try source.load(environment: environment)
        if created {
            logger.notice("made a new master key; back it up with the data dir", metadata: ["path": "\(file(MasterKeySource.fileName))", "master_key.id": "\(key.id)"])
        }
        return try SQLiteKeyStore(path: storePath, masterKey: key)
    }

    /// A rotation writes `master.key.next` before it commits and renames it after. If it stopped between
    /// the two, the store says which key is current.
    private func finishInterruptedRotation(logger: Logger) throws {
        let pending = file(MasterKeySource.pendingFileName)
        guard FileManager.default.fileExists(atPath: pending) else { return }
        let next = try MasterKeySource.read(pending, as: .insideDataDirectory)
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
        try await locked {
            let store = try openStoreHoldingLock(masterKeyFile: masterKeyFile, environment: environment, logger: logger)
            let source = MasterKeySource.choose(file: masterKeyFile, environment: environment, dataDirectory: path)
            let keepsKeyHere = source == .dataDirectory(path)
            let pending = file(MasterKeySource.pendingFileName)
            if keepsKeyHere { try SecretFile.writeAtomically(newKey.base64 + "\n", to: pending) }
            let count = try await store.rotateMasterKey(to: newKey)
            if keepsKeyHere { try SecretFile.rename(pending, over: file(MasterKeySource.fileName)) }
            return count
        }
    }

    /// On a first start with no application registered, makes `default` and writes its id to
    /// `application-id` (mode 0600) for local clients. Returns whether it did.
    public func ensureDefaultApplication(_ registry: some ApplicationRegistry) async throws -> Bool {
        try await locked {
            guard try await registry.applications().isEmpty else { return false }
            let id = try await registry.registerApplication(named: "default", scopes: [.keys, .relay], boundUser: nil)
            try SecretFile.writeAtomically(id + "\n", to: file(Self.applicationIDFileName))
            return true
        }
    }
}

import ExternalProviderCore
import Foundation

/// Where the master key comes from, in order: `--master-key-file` or `EXTERNAL_PROVIDER_MASTER_KEY`
/// (base64 of 32 bytes); otherwise `<data-dir>/master.key`, made on first start.
public enum MasterKeySource: Sendable, Equatable {
    case file(String)
    case environment
    case dataDirectory(String)

    public static let environmentVariable = "EXTERNAL_PROVIDER_MASTER_KEY"
    public static let fileName = "master.key"
    /// A rotation writes the new key here first and renames it over `master.key` once the store commits.
    public static let pendingFileName = "master.key.next"

    public static func choose(file: String?, environment: [String: String], dataDirectory: String) -> MasterKeySource {
        if let file { return .file(file) }
        if environment[environmentVariable] != nil { return .environment }
        return .dataDirectory(dataDirectory)
    }

    /// Loads the key; for `.dataDirectory`, makes and saves a new one if there is none yet.
    public func load(environment: [String: String]) throws -> (key: MasterKey, created: Bool) {
        switch self {
        case .file(let path):
            return (try Self.read(path, as: .namedByOperator), false)
        case .environment:
            do {
                return (try MasterKey(base64: environment[Self.environmentVariable] ?? ""), false)
            } catch {
                throw Fault(.store, "\(Self.environmentVariable) is not usable: \(error)")
            }
        case .dataDirectory(let directory):
            // The caller holds the data dir's lock; `createExclusively` also never replaces a key another
            // process made, and that key is the one to use.
            let path = (directory as NSString).appendingPathComponent(Self.fileName)
            var info = stat()
            if lstat(path, &info) == 0 { return (try Self.read(path, as: .insideDataDirectory), false) }
            let key = MasterKey.generate()
            guard try SecretFile.createExclusively(key.base64 + "\n", at: path) else {
                return (try Self.read(path, as: .insideDataDirectory), false)
            }
            return (key, true)
        }
    }

    /// Throws `UnsafePath` for a file that others could read or replace, `StoreFault` for one that holds no key.
    public static func read(_ path: String, as trust: PrivatePath.Trust) throws -> MasterKey {
        let text = try PrivatePath.readSecret(path, as: trust)
        do {
            return try MasterKey(base64: text)
        } catch {
            throw Fault(.store, "the master key file \(path) is not usable: \(error)")
        }
    }
}

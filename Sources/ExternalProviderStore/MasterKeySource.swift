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
    static let pendingFileName = "master.key.next"

    public static func choose(file: String?, environment: [String: String], dataDirectory: String) -> MasterKeySource {
        if let file { return .file(file) }
        if environment[environmentVariable] != nil { return .environment }
        return .dataDirectory(dataDirectory)
    }

    /// Loads the key; for `.dataDirectory`, makes and saves a new one if there is none yet.
    public func load(environment: [String: String]) throws -> (key: MasterKey, created: Bool) {
        switch self {
        case .file(let path):
            return (try Self.read(path), false)
        case .environment:
            do {
                return (try MasterKey(base64: environment[Self.environmentVariable] ?? ""), false)
            } catch {
                throw StoreFault("\(Self.environmentVariable) is not usable: \(error)")
            }
        case .dataDirectory(let directory):
            let path = (directory as NSString).appendingPathComponent(Self.fileName)
            if FileManager.default.fileExists(atPath: path) { return (try Self.read(path), false) }
            let key = MasterKey.generate()
            try SecretFile.writeAtomically(key.base64 + "\n", to: path)
            return (key, true)
        }
    }

    static func read(_ path: String) throws -> MasterKey {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw StoreFault("cannot read the master key file \(path): it does not exist or is not readable")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw StoreFault("cannot read the master key file \(path): \((error as NSError).localizedDescription)")
        }
        do {
            return try MasterKey(base64: text)
        } catch {
            throw StoreFault("the master key file \(path) is not usable: \(error)")
        }
    }
}

/// Files that hold secrets: written whole or not at all, readable by the owner only.
public enum SecretFile {
    public static func writeAtomically(_ contents: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreFault("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, synced == 0 else {
            unlink(temporary)
            throw StoreFault("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        try rename(temporary, over: path)
    }

    /// `rename(2)` then an fsync of the directory, so the new name survives a crash.
    public static func rename(_ source: String, over destination: String) throws {
        guard Foundation.rename(source, destination) == 0 else {
            throw StoreFault("cannot rename \(source) to \(destination): \(String(cString: strerror(errno)))")
        }
        let directory = open((destination as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}

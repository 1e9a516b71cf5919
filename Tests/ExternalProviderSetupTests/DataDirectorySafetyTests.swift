import ExternalProviderCore
import ExternalProviderSQLite
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import Testing

@testable import ExternalProviderSetup

/// A data dir another user owns or can write, or a key file others can read, hands them the keys: the
/// server refuses to start on one, in one line that says what to fix.
@Suite("Data dir safety: ownership, modes, links, and concurrent first starts")
struct DataDirectorySafetyTests {
    let logger = Logger(label: "test")
    static let isRoot = geteuid() == 0
    static let nobody: uid_t = 65534

    func temporary() -> DataDirectory {
        DataDirectory(FileManager.default.temporaryDirectory.appendingPathComponent("ep-safe-\(UUID().uuidString)").path)
    }

    func refusal(_ directory: DataDirectory, masterKeyFile: String? = nil) async -> String? {
        do {
            _ = try await directory.openStore(masterKeyFile: masterKeyFile, environment: [:], logger: logger)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// A data dir that has been used once: it holds a master key, a store and its WAL.
    func used() async throws -> DataDirectory {
        let directory = temporary()
        _ = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        return directory
    }

    @Test("a data dir open to others is refused, not warned about")
    func looseDirectory() async throws {
        let directory = try await used()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        chmod(directory.path, 0o777)
        let line = try #require(await refusal(directory))
        #expect(line.contains("mode 777") && line.contains("chmod 700 \(directory.path)"), "\(line)")
        #expect(!line.contains("\n"))
        chmod(directory.path, 0o750)
        #expect(await refusal(directory)?.contains("mode 750") == true)
        chmod(directory.path, 0o700)
        #expect(await refusal(directory) == nil)
    }

    @Test("a data dir owned by another user is refused, even with mode 0700", .enabled(if: isRoot, "needs root to chown"))
    func foreignDirectory() async throws {
        let directory = try await used()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        chown(directory.path, Self.nobody, gid_t(Self.nobody))
        let line = try #require(await refusal(directory))
        #expect(line.contains("belongs to user 65534"), "\(line)")
    }

    @Test("master.key, the store and its WAL must be the owner's alone", arguments: [
        "master.key", "external-provider.sqlite", "external-provider.sqlite-wal", "external-provider.sqlite-shm", "application-id",
    ])
    func looseFiles(name: String) async throws {
        let directory = try await used()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        let path = directory.file(name)
        if !FileManager.default.fileExists(atPath: path) { try SecretFile.writeAtomically("x", to: path) }
        chmod(path, 0o644)
        let line = try #require(await refusal(directory))
        #expect(line.contains("\(path) is open to other users (mode 644)") && line.contains("chmod 600"), "\(line)")
        chmod(path, 0o600)
        if Self.isRoot {
            chown(path, Self.nobody, gid_t(Self.nobody))
            #expect(await refusal(directory)?.contains("belongs to user 65534") == true)
        }
    }

    @Test("a link in place of master.key or the store is not followed")
    func symbolicLinks() async throws {
        let directory = try await used()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        let elsewhere = directory.path + "-elsewhere.key"
        defer { unlink(elsewhere) }
        let keyPath = directory.file("master.key")
        try SecretFile.rename(keyPath, over: elsewhere)
        symlink(elsewhere, keyPath)
        let line = try #require(await refusal(directory))
        #expect(line.contains("\(keyPath) is a symbolic link"), "\(line)")
    }

    @Test("--master-key-file that others may read or write is refused; the owner's 0600 or 0400 file is used")
    func operatorKeyFile() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        let keyFile = directory.path + ".key"
        defer { unlink(keyFile) }
        try SecretFile.writeAtomically(MasterKey.generate().base64, to: keyFile)
        for loose in [0o644, 0o640, 0o606, 0o620] as [mode_t] {
            chmod(keyFile, loose)
            let line = await refusal(directory, masterKeyFile: keyFile)
            #expect(line?.contains("is open to other users") == true, "mode \(String(loose, radix: 8)): \(line ?? "accepted")")
        }
        chmod(keyFile, 0o400)
        #expect(await refusal(directory, masterKeyFile: keyFile) == nil)
        if Self.isRoot {
            chown(keyFile, Self.nobody, gid_t(Self.nobody))
            #expect(await refusal(directory, masterKeyFile: keyFile)?.contains("belongs to user 65534") == true)
        }
    }

    @Test("processes opening a new data dir at once all get the key that is on disk")
    func concurrentFirstOpens() async throws {
        for _ in 0..<10 {
            let directory = temporary()
            defer { try? FileManager.default.removeItem(atPath: directory.path) }
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let store = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
                        _ = try await directory.ensureDefaultApplication(store)
                        return try #require(try SQLiteKeyStore.recordedMasterKeyID(at: directory.storePath))
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            let onDisk = try MasterKey(base64: String(contentsOfFile: directory.file("master.key"), encoding: .utf8))
            #expect(ids == [onDisk.id])
            #expect(try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger).applications().count == 1)
        }
    }
}

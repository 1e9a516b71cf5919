import ExternalProviderCore
import ExternalProviderSQLite
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import Testing

@testable import ExternalProviderSetup

@Suite("The data dir: master key, default application, rotation")
struct DataDirectoryTests {
    let logger = Logger(label: "test")

    func temporary() -> DataDirectory {
        DataDirectory(FileManager.default.temporaryDirectory.appendingPathComponent("ep-dd-\(UUID().uuidString)").path)
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("the first start makes a 0700 dir and a 0600 master.key, and the same key opens it again")
    func firstStart() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        #expect(try mode(directory.path) == 0o700)
        _ = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        let keyFile = directory.file("master.key")
        #expect(try mode(keyFile) == 0o600)
        _ = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
    }

    @Test("a key from the environment or a file wins over master.key, and a wrong one is refused in one line")
    func keySources() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        let key = MasterKey.generate()
        _ = try await directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": key.base64], logger: logger)
        #expect(!FileManager.default.fileExists(atPath: directory.file("master.key")))
        let keyFile = directory.file("given.key")
        try SecretFile.writeAtomically(key.base64 + "\n", to: keyFile)
        _ = try await directory.openStore(masterKeyFile: keyFile, environment: [:], logger: logger)
        do {
            _ = try await directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": MasterKey.generate().base64], logger: logger)
            Issue.record("a store sealed under another key opened")
        } catch let failure as Fault {
            #expect(failure.description.contains("sealed under master key \(key.id)"))
            #expect(!failure.description.contains("\n"))
        }
        await #expect(throws: Fault.self) {
            try await directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": "short"], logger: logger)
        }
    }

    @Test("with both --master-key-file and EXTERNAL_PROVIDER_MASTER_KEY given, the file wins")
    func fileWinsOverEnvironment() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        let (fromFile, fromEnvironment) = (MasterKey.generate(), MasterKey.generate())
        let keyFile = directory.file("given.key")
        try SecretFile.writeAtomically(fromFile.base64 + "\n", to: keyFile)
        let store = try await directory.openStore(
            masterKeyFile: keyFile, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": fromEnvironment.base64], logger: logger)
        #expect(store.masterKeyID == fromFile.id)
        #expect(try SQLiteKeyStore.recordedMasterKeyID(at: directory.storePath) == fromFile.id)
    }

    @Test("the default application is made once, and its id written with mode 0600")
    func defaultApplication() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        let store = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(try await directory.ensureDefaultApplication(store))
        let file = directory.file(DataDirectory.applicationIDFileName)
        let id = try String(contentsOfFile: file, encoding: .utf8)
        #expect(id.hasSuffix("\n"))
        #expect(try mode(file) == 0o600)
        #expect(try await store.isActiveApplication(id: String(id.dropLast())))
        #expect(try await directory.ensureDefaultApplication(store) == false)
    }

    @Test("rotating a data-dir key replaces master.key; afterwards the old key is not needed")
    func rotateDataDirectoryKey() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        let store = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        _ = try await store.perform(.create(try .init(provider: .openAI, apiKey: "sk-rotating-key-0000", apiKeyName: nil, organizationKey: nil)), for: .init(trusted: "u"))
        let oldKey = try String(contentsOfFile: directory.file("master.key"), encoding: .utf8)
        let newKey = MasterKey.generate()
        #expect(try await directory.rotateMasterKey(to: newKey, masterKeyFile: nil, environment: [:], logger: logger) == 1)
        #expect(try MasterKey(base64: String(contentsOfFile: directory.file("master.key"), encoding: .utf8)).id == newKey.id)
        #expect(!FileManager.default.fileExists(atPath: directory.file("master.key.next")))
        let reopened = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(try await reopened.account(for: .init(trusted: "u"))?.keys[.openAI]?.apiKey == "sk-rotating-key-0000")
        await #expect(throws: Fault.self) {
            try await directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": oldKey], logger: logger)
        }
    }

    @Test("a rotation interrupted after its commit is finished at the next start; one interrupted before is undone")
    func interruptedRotation() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare()
        let store = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        let pending = directory.file("master.key.next")

        let abandoned = MasterKey.generate()
        try SecretFile.writeAtomically(abandoned.base64, to: pending)
        _ = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(!FileManager.default.fileExists(atPath: pending))

        let committed = MasterKey.generate()
        try SecretFile.writeAtomically(committed.base64, to: pending)
        _ = try await store.rotateMasterKey(to: committed)
        _ = try await directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(try MasterKey(base64: String(contentsOfFile: directory.file("master.key"), encoding: .utf8)).id == committed.id)
    }
}

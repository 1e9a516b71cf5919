import ExternalProviderStore
import Foundation
import Logging
import Testing

@testable import ExternalProviderServer

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
    func firstStart() throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare(logger: logger)
        #expect(try mode(directory.path) == 0o700)
        _ = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        let keyFile = directory.file("master.key")
        #expect(try mode(keyFile) == 0o600)
        _ = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
    }

    @Test("a key from the environment or a file wins over master.key, and a wrong one is refused in one line")
    func keySources() throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare(logger: logger)
        let key = MasterKey.generate()
        _ = try directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": key.base64], logger: logger)
        #expect(!FileManager.default.fileExists(atPath: directory.file("master.key")))
        let keyFile = directory.file("given.key")
        try (key.base64 + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        _ = try directory.openStore(masterKeyFile: keyFile, environment: [:], logger: logger)
        do {
            _ = try directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": MasterKey.generate().base64], logger: logger)
            Issue.record("a store sealed under another key opened")
        } catch let failure as ServeFailure {
            #expect(failure.description.contains("sealed under master key \(key.id)"))
            #expect(!failure.description.contains("\n"))
        }
        #expect(throws: ServeFailure.self) {
            try directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": "short"], logger: logger)
        }
    }

    @Test("the default application is made once, and its id written with mode 0600")
    func defaultApplication() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare(logger: logger)
        let store = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        let id = try #require(try await directory.ensureDefaultApplication(store))
        let file = directory.file(DataDirectory.applicationIDFileName)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == id + "\n")
        #expect(try mode(file) == 0o600)
        #expect(try await store.isActiveApplication(id: id))
        #expect(try await directory.ensureDefaultApplication(store) == nil)
    }

    @Test("rotating a data-dir key replaces master.key; afterwards the old key is not needed")
    func rotateDataDirectoryKey() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare(logger: logger)
        let store = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        _ = try await store.perform(.create(try .init(provider: .openAI, apiKey: "sk-rotating-key-0000", apiKeyName: nil, organizationKey: nil)), for: .init(trusted: "u"))
        let oldKey = try String(contentsOfFile: directory.file("master.key"), encoding: .utf8)
        let newKey = MasterKey.generate()
        #expect(try await directory.rotateMasterKey(to: newKey, masterKeyFile: nil, environment: [:], logger: logger) == 1)
        #expect(try MasterKey(base64: String(contentsOfFile: directory.file("master.key"), encoding: .utf8)).id == newKey.id)
        #expect(!FileManager.default.fileExists(atPath: directory.file("master.key.next")))
        let reopened = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(try await reopened.account(for: .init(trusted: "u"))?.keys[.openAI]?.apiKey == "sk-rotating-key-0000")
        #expect(throws: ServeFailure.self) {
            try directory.openStore(masterKeyFile: nil, environment: ["EXTERNAL_PROVIDER_MASTER_KEY": oldKey], logger: logger)
        }
    }

    @Test("a rotation interrupted after its commit is finished at the next start; one interrupted before is undone")
    func interruptedRotation() async throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.prepare(logger: logger)
        let store = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        let pending = directory.file("master.key.next")

        let abandoned = MasterKey.generate()
        try SecretFile.writeAtomically(abandoned.base64, to: pending)
        _ = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(!FileManager.default.fileExists(atPath: pending))

        let committed = MasterKey.generate()
        try SecretFile.writeAtomically(committed.base64, to: pending)
        _ = try await store.rotateMasterKey(to: committed)
        _ = try directory.openStore(masterKeyFile: nil, environment: [:], logger: logger)
        #expect(try MasterKey(base64: String(contentsOfFile: directory.file("master.key"), encoding: .utf8)).id == committed.id)
    }
}

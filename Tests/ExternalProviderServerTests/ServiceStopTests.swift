import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

/// The service group stops the other services by cancelling them when the server fails to start (a
/// database at the wrong version, say). A service that swallowed the cancellation and looped on would keep
/// the process alive, spinning, instead of letting it exit with its one line.
@Suite("Background services stop when cancelled")
struct ServiceStopTests {
    static func stopsWhenCancelled(_ service: some Service) async throws -> Bool {
        let finished = Mutex(false)
        let running = Task { try? await service.run() }
        let watcher = Task {
            _ = await running.value
            finished.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(100))
        running.cancel()
        for _ in 0..<50 where !finished.withLock({ $0 }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = watcher
        return finished.withLock { $0 }
    }

    @Test("the key re-checker")
    func rechecker() async throws {
        let store = try SQLiteKeyStore.inMemory()
        let rechecker = KeyRechecker(provider: .openAI, store: store, verifier: FakeVerifier(), interval: 60, logger: Logger(label: "test"))
        #expect(try await Self.stopsWhenCancelled(rechecker))
    }

    @Test("the memory trimmer")
    func trimmer() async throws {
        #expect(try await Self.stopsWhenCancelled(MemoryTrimmer(logger: Logger(label: "test"))))
    }
}

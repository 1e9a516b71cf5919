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
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

@Suite("Key health: set when stored, by use, and by periodic re-checks")
struct KeyHealthTests {
    let logger = Logger(label: "test")

    func store(_ keys: [String: String], verifiedAt: Date? = nil) async throws -> SQLiteKeyStore {
        let store = try SQLiteKeyStore.inMemory()
        let service = KeyService(store: store, verifier: verifiedAt.map { _ in FakeVerifier(refusingKeysContaining: "revoked") }, now: { verifiedAt ?? Date() })
        for (user, key) in keys.sorted(by: { $0.key < $1.key }) {
            let operation = KeyOperation.create(try NewKey(provider: .openAI, apiKey: key, apiKeyName: nil, organizationKey: nil))
            _ = try await service.perform(operation, for: UserID(trusted: user), origin: .commandLine)
        }
        return store
    }

    func health(_ store: SQLiteKeyStore, _ user: String) async throws -> KeyHealth? {
        try await store.storedKeys().first { $0.user.rawValue == user }?.health
    }

    @Test("a key checked when stored is valid, an unchecked one unverified; a new pair starts over, a new name does not")
    func writes() async throws {
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        let checked = try await store(["u": "sk-checked-000000000000"], verifiedAt: at)
        #expect(try await health(checked, "u") == .valid(checkedAt: at))
        _ = try await checked.perform(.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: "renamed", organizationKey: nil)), for: UserID(trusted: "u"))
        #expect(try await health(checked, "u") == .valid(checkedAt: at))
        _ = try await checked.perform(.update(try KeyPatch(provider: .openAI, apiKey: "sk-replaced-00000000000", apiKeyName: nil, organizationKey: nil)), for: UserID(trusted: "u"))
        #expect(try await health(checked, "u") == .unverified)
        let unchecked = try await store(["v": "sk-unchecked-0000000000"])
        #expect(try await health(unchecked, "v") == .unverified)
        let listed = try #require(try await checked.storedKeys().first)
        #expect(listed.maskedKey == "sk-...0000" && listed.provider == .openAI)
    }

    @Test("what OpenAI said is recorded only for the pair it was said of")
    func recordsForTheSamePairOnly() async throws {
        let store = try await store(["u": "sk-current-000000000000"])
        let user = UserID(trusted: "u")
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        let stale = ProviderCredentials(provider: .openAI, apiKey: "sk-replaced-meanwhile-00", organization: nil)
        #expect(try await !store.recordHealth(.rejected(checkedAt: at, code: "invalid_api_key"), of: stale, for: user))
        #expect(try await health(store, "u") == .unverified)
        let current = ProviderCredentials(provider: .openAI, apiKey: "sk-current-000000000000", organization: nil)
        #expect(try await store.recordHealth(.rejected(checkedAt: at, code: "invalid_api_key"), of: current, for: user))
        #expect(try await health(store, "u") == .rejected(checkedAt: at, code: "invalid_api_key"))
    }

    @Test("successes are written at most once a minute per key; a refusal at once, and it resets the minute")
    func throttledSuccesses() async throws {
        let store = try await store(["u": "sk-busy-traffic-0000000"])
        let clock = Mutex(ContinuousClock.now)
        let reporter = KeyHealthReporter(store: store, logger: logger, now: { clock.withLock { $0 } })
        let user = UserID(trusted: "u")
        let credentials = ProviderCredentials(provider: .openAI, apiKey: "sk-busy-traffic-0000000", organization: nil)
        await reporter.accepted(credentials, of: user)
        let first = try #require(try await health(store, "u")?.checkedAt)
        try await Task.sleep(for: .milliseconds(20))
        clock.withLock { $0 += .seconds(59) }
        await reporter.accepted(credentials, of: user)
        #expect(try await health(store, "u")?.checkedAt == first)
        clock.withLock { $0 += .seconds(2) }
        await reporter.accepted(credentials, of: user)
        let second = try #require(try await health(store, "u")?.checkedAt)
        #expect(second > first)
        await reporter.rejected(credentials, of: user, code: "invalid_api_key")
        #expect(try await health(store, "u")?.name == "rejected")
        await reporter.accepted(credentials, of: user)
        #expect(try await health(store, "u")?.name == "valid")
    }

    @Test("re-checks take due keys four at a time, record the answers, wait while none are due, and back off on 429")
    func rechecks() async throws {
        let keys = Dictionary(uniqueKeysWithValues: (0..<5).map { ("user-\($0)", "sk-fine-\($0)-0000000000000") } + [("user-x", "sk-revoked-00000000000")])
        let store = try await store(keys)
        let verifier = FakeVerifier(refusingKeysContaining: "revoked")
        let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let rechecker = KeyRechecker(provider: .openAI, store: store, verifier: verifier, interval: 3600, logger: logger, now: { now.withLock { $0 } })
        #expect(rechecker.tick == .seconds(2.5))

        #expect(await rechecker.checkDueKeys(previousPause: rechecker.tick) == KeyRechecker.catchUpPause)
        #expect(verifier.asked.count == 4)
        #expect(await rechecker.checkDueKeys(previousPause: KeyRechecker.catchUpPause) == rechecker.tick)
        #expect(Set(verifier.asked.map(\.apiKey)) == Set(keys.values))
        #expect(try await health(store, "user-x") == .rejected(checkedAt: now.withLock { $0 }, code: "invalid_api_key"))
        #expect(try await health(store, "user-0") == .valid(checkedAt: now.withLock { $0 }))

        // Nothing is due until the interval has passed.
        #expect(await rechecker.checkDueKeys(previousPause: rechecker.tick) == rechecker.tick)
        #expect(verifier.asked.count == 6)
        now.withLock { $0 += 3601 }
        #expect(await rechecker.checkDueKeys(previousPause: rechecker.tick) == KeyRechecker.catchUpPause)
        #expect(verifier.asked.count == 10)

        let busy = try await self.store(["b": "sk-busy-00000000000000"])
        let limited = KeyRechecker(provider: .openAI, store: busy, verifier: verifier, interval: 3600, logger: logger)
        #expect(await limited.checkDueKeys(previousPause: .seconds(10)) == .seconds(20))
        #expect(await limited.checkDueKeys(previousPause: .seconds(500)) == KeyRechecker.maxPause)
        #expect(try await health(busy, "b") == .unverified)
    }
}

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

/// A store whose check does not answer for 30 s, cancelled or not, as a query on a connection the
/// database dropped can: readiness must answer by its budget all the same.
struct SilentStore: KeyStore {
    let base: any KeyStore
    var masterKeyID: String { base.masterKeyID }
    func checkReachable() async throws {
        // An unstructured task is not cancelled with the one awaiting it.
        await Task { try? await Task.sleep(for: .seconds(30)) }.value
    }
    func account(for user: UserID) async throws -> UserAccount? { try await base.account(for: user) }
    func changeAccount(of user: UserID, _ decide: @escaping @Sendable (UserAccount?) throws -> AccountChange) async throws -> UserAccount {
        try await base.changeAccount(of: user, decide)
    }
    func recordHealth(_ health: KeyHealth, of credentials: ProviderCredentials, for user: UserID) async throws -> Bool {
        try await base.recordHealth(health, of: credentials, for: user)
    }
    func storedKeys(of user: UserID?) async throws -> [StoredKeySummary] { try await base.storedKeys(of: user) }
    func keyCounts() async throws -> [KeyCount: Int] { try await base.keyCounts() }
    func auditTrail(_ query: AuditQuery) async throws -> [AuditEntry] { try await base.auditTrail(query) }
    func keysDueForCheck(of provider: Provider, checkedBefore cutoff: Date, at now: Date, limit: Int) async throws -> [(UserID, ProviderCredentials)] {
        try await base.keysDueForCheck(of: provider, checkedBefore: cutoff, at: now, limit: limit)
    }
    func deferCheck(of credentials: ProviderCredentials, for user: UserID, until: Date) async throws -> Bool {
        try await base.deferCheck(of: credentials, for: user, until: until)
    }
}

@Suite("Operating: readiness and request logs")
struct OperatingTests {
    static var requestID: HTTPField.Name { RequestLogMiddleware.header }

    @Test("/ready answers 'ready' once the store answers, with no application id")
    func ready() async throws {
        // A budget no scheduling delay reaches: with the whole suite running in parallel on 2 cores, a
        // trivial read sometimes took longer than the one-second budget. The budget itself is the next test's.
        try await TestServer(readinessBudget: .seconds(30)).run { client in
            let answer = try await client.send("/ready", method: .get)
            #expect(answer.status == .ok && answer.body == "ready")
        }
    }

    @Test("/ready answers 503 after its one-second budget when the store does not answer")
    func notReady() async throws {
        let store = try SQLiteKeyStore.inMemory()
        #expect(Readiness.budget == .seconds(1))
        // The silent store would answer after 30 s, cancelled or not: an answer long before that came from
        // the budget, not from a timeout that waits for the check to end. How
        // long past one second it comes depends on the machine's load, so no tighter bound is asserted.
        let started = ContinuousClock.now
        #expect(await Readiness.storeAnswers(SilentStore(base: store)) == false)
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(1) && waited < .seconds(15))
        #expect(await Readiness.storeAnswers(store, within: .seconds(30)))
        #expect(Problem.notReady.status == .serviceUnavailable)
    }

    @Test("one log line per request with method, path, status, duration, application name and request id; the id is echoed")
    func requestLine() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let given = try await client.post(
                "create", #"{"user":"auth0|logged","open_AI":{"api_key":"sk-logged-0123456789abcdWxyz"}}"#,
                headers: [Self.requestID: "trace-42.a_b"])
            #expect(given.status == .ok && given.headers[Self.requestID] == "trace-42.a_b")
            let made = try await client.send("/health", method: .get)
            let generated = try #require(made.headers[Self.requestID])
            #expect(generated.count == 32 && generated.allSatisfy(\.isHexDigit))
            let forged = try await client.send("/health", method: .get, headers: [Self.requestID: "x\" level=error fake"])
            #expect(forged.headers[Self.requestID] != "x\" level=error fake")
        }
        let lines = server.logs.text.split(separator: "\n").filter { $0.contains("info request ") }
        #expect(lines.count == 3)
        let create = try #require(lines.first)
        for field in [
            #""http.method": POST"#, #""http.path": /external_provider/api_key/create"#, #""http.status": 200"#, #""application": tests"#,
            #""request.id": trace-42.a_b"#, #""duration_ms": "#,
        ] {
            #expect(create.contains(field), "\(field) missing from \(create)")
        }
        #expect(!server.logs.text.contains(server.applicationID))
    }

    @Test("request ids: a plain token of up to 128 characters is kept, anything else replaced")
    func requestIDs() {
        #expect(RequestLogMiddleware.requestID(given: "abc-DEF_1.2") == "abc-DEF_1.2")
        for refused in ["", "a b", "line\nbreak", String(repeating: "a", count: 129), "ключ"] {
            #expect(RequestLogMiddleware.requestID(given: refused) != refused)
        }
    }
}

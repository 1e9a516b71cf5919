import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

/// Every secret sent to one test server: the keys and organizations in the bodies its client sent,
/// raw or not, and every application id. Its log is checked against all of them when the test ends.
final class SentSecrets: Sendable {
    private let secrets = Mutex<Set<String>>([])

    func record(body: String) {
        let pattern = /"(?:api_key|organization_key)"\s*:\s*"([^"]{6,})"/
        let found = body.matches(of: pattern).map { String($0.output.1) }
        secrets.withLock { $0.formUnion(found) }
    }

    func record(_ secret: String) {
        secrets.withLock { _ = $0.insert(secret) }
    }

    var all: Set<String> { secrets.withLock { $0 } }
}

/// For tests that never reach a provider: every model list says the provider is out of reach.
struct NoProvider: ModelLister {
    func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, [ListedModel]?) {
        (.unavailable(reason: "no provider in this test"), nil)
    }
}

/// A server on the real store (a file in WAL mode with `synchronous=FULL`, read through the pool, in a
/// temporary directory) with one registered application, its router driven without a socket so that a
/// test can put in its own verifier, limiter or clock. `ClientTests` drive the whole assembly `serve`
/// runs, over a real port. Hummingbird's router test client sends `Host: localhost`, so the access
/// policy here is bound to port 80 by default.
struct TestServer {
    let store: SQLiteKeyStore
    private let directory: TemporaryDirectory
    /// Every logger of the server writes here, the verifier's included when it is given this capture's.
    let logs: LogCapture
    let sent = SentSecrets()
    let applicationID: String
    let access: AccessPolicy
    let limiter: FailedAttemptLimiter
    let recentlyValid: RecentlyValidApplications
    let verifier: (any KeyVerifier)?
    /// On, as `serve` has it by default.
    let metrics: ServerMetrics? = ServerMetrics()
    let readinessBudget: Duration

    init(
        access: AccessPolicy = AccessPolicy(boundHost: "127.0.0.1", port: 80), limiter: FailedAttemptLimiter = FailedAttemptLimiter(),
        verifier: (any KeyVerifier)? = nil, recentlyValid: RecentlyValidApplications = RecentlyValidApplications(),
        logs: LogCapture = LogCapture(), readinessBudget: Duration = Readiness.budget
    ) async throws {
        self.logs = logs
        self.readinessBudget = readinessBudget
        directory = try TemporaryDirectory()
        store = try SQLiteKeyStore(path: directory.file("store.sqlite"), masterKey: .generate())
        applicationID = try await store.registerApplication(named: "tests")
        sent.record(applicationID)
        self.access = access
        self.limiter = limiter
        self.recentlyValid = recentlyValid
        self.verifier = verifier
    }

    /// When the provider last accepted the user's OpenAI credentials, as the store recorded it.
    func verifiedAt(user: String) async throws -> Date? {
        try await store.writer.read { db in
            try Date.fetchOne(db, sql: "SELECT verified_at FROM provider_key WHERE user = ?", arguments: [user])
        }
    }

    func run(_ test: @Sendable (APIClient) async throws -> Void) async throws {
        let logger = logs.logger()
        let router = try buildRouter(ServerParts(
            store: store, verifier: verifier.map { base in metrics.map { CountedVerifier(base: base, metrics: $0) } ?? base },
            models: NoProvider(), health: KeyHealthReporter(store: store, logger: logger), relay: nil, access: access,
            authenticator: Authenticator(registry: store, limiter: limiter, recentlyValid: recentlyValid, metrics: metrics), metrics: metrics,
            readinessBudget: readinessBudget))
        let app = Application(router: router, logger: logger)
        try await app.test(.router) { client in
            try await test(APIClient(raw: client, applicationID: applicationID, sent: sent))
        }
        // Never an empty search: the application id at least was sent.
        let secrets = sent.all
        #expect(secrets.contains(applicationID))
        let log = logs.text
        for secret in secrets {
            #expect(!log.contains(secret), "a key or an application id reached the log")
        }
    }
}

struct Answer {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: String

    var output: WireOutput {
        get throws { try JSONDecoder().decode(WireOutput.self, from: Data(body.utf8)) }
    }
}

/// Sends requests as the registered application unless told otherwise.
struct APIClient: Sendable {
    let raw: any TestClientProtocol
    let applicationID: String
    let sent: SentSecrets

    func post(
        _ operation: String, _ body: String, contentType: String? = "application/json",
        applicationID: String? = nil, anonymous: Bool = false, headers extra: HTTPFields = [:]
    ) async throws -> Answer {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        if !anonymous { headers[Authenticator.applicationIDHeader] = applicationID ?? self.applicationID }
        return try await send("/external_provider/api_key/\(operation)", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    func send(_ uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> Answer {
        if let body { sent.record(body: String(buffer: body)) }
        for name in [Authenticator.applicationIDHeader, .authorization] {
            for value in headers[values: name] where value.utf8.count >= 6 { sent.record(value.replacingOccurrences(of: "Bearer ", with: "")) }
        }
        return try await raw.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Answer(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
    }
}

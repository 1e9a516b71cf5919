import ExternalProviderCore
import ExternalProviderStore
import GRDB
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderServer
@testable import ExternalProviderStore

/// Keeps every log line a test's server writes, to check what reaches the log and what never may.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "test") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append("\(event.level) \(event.message) \(merged)")
        }
    }
}

/// Every secret a test sent; each server's log is checked against all of them when its test ends.
enum SentSecrets {
    private static let secrets = Mutex<Set<String>>([])

    static func record(in body: String) {
        let pattern = /"(?:api_key|organization_key)"\s*:\s*"([^"]{6,})"/
        let found = body.matches(of: pattern).map { String($0.output.1) }
        secrets.withLock { $0.formUnion(found) }
    }

    static var all: Set<String> { secrets.withLock { $0 } }
}

/// For tests that never reach the provider: every model list says OpenAI is out of reach.
struct NoOpenAI: ModelLister {
    func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, Data?) {
        (.unavailable(reason: "no OpenAI in this test"), nil)
    }
}

/// A server on a real in-memory SQLite store with one registered application, driven without a socket.
/// Hummingbird's router test client sends `Host: localhost`, so the server is bound to port 80 by default.
struct TestServer {
    let store: SQLiteKeyStore
    let logs = LogCapture()
    let applicationID: String
    let access: AccessPolicy
    let limiter: FailedAttemptLimiter
    let recentlyValid: RecentlyValidApplications
    let verifier: (any KeyVerifier)?
    /// On, as `serve` has it by default.
    let metrics: ServerMetrics? = ServerMetrics()

    init(
        access: AccessPolicy = AccessPolicy(boundHost: "127.0.0.1", port: 80), limiter: FailedAttemptLimiter = FailedAttemptLimiter(),
        verifier: (any KeyVerifier)? = nil, recentlyValid: RecentlyValidApplications = RecentlyValidApplications()
    ) async throws {
        store = try SQLiteKeyStore.inMemory()
        applicationID = try await store.registerApplication(named: "tests")
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
        let router = try buildRouter(
            store, verifier: verifier.map { base in metrics.map { CountedVerifier(base: base, metrics: $0) } ?? base }, models: NoOpenAI(),
            health: KeyHealthReporter(store: store, logger: logger), access: access, limiter: limiter, recentlyValid: recentlyValid, metrics: metrics,
            logger: logger)
        let app = Application(router: router, logger: logger)
        try await app.test(.router) { client in
            try await test(APIClient(raw: client, applicationID: applicationID))
        }
        let log = logs.text
        for secret in SentSecrets.all {
            #expect(!log.contains(secret), "a key reached the log")
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

    func post(
        _ operation: String, _ body: String, contentType: String? = "application/json",
        applicationID: String? = nil, anonymous: Bool = false, headers extra: HTTPFields = [:]
    ) async throws -> Answer {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        if !anonymous { headers[ApplicationAuthMiddleware.header] = applicationID ?? self.applicationID }
        SentSecrets.record(in: body)
        return try await send("/external_provider/api_key/\(operation)", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    func send(_ uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> Answer {
        try await raw.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Answer(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
    }
}

extension KeyStore {
    /// An operation through the one write path every store serves, with verification off.
    func perform(_ operation: KeyOperation, for user: UserID) async throws -> UserAccount {
        try await KeyService(store: self, verifier: nil).perform(operation, for: user, origin: .commandLine)
    }
}

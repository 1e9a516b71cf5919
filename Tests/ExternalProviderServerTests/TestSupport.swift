import ExternalProviderStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderServer

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

/// A server on a real in-memory SQLite store, driven without a socket.
struct TestServer {
    let store: SQLiteKeyStore
    let logs = LogCapture()

    init() throws {
        store = try SQLiteKeyStore.inMemory()
    }

    func run(_ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let logger = logs.logger()
        let app = Application(router: try buildRouter(store, logger: logger), logger: logger)
        try await app.test(.router, test)
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

extension TestClientProtocol {
    func post(_ operation: String, _ body: String, contentType: String? = "application/json", headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        return try await send("/external_provider/api_key/\(operation)", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    func send(_ uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> Answer {
        try await execute(uri: uri, method: method, headers: headers, body: body) { response in
            Answer(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
    }
}


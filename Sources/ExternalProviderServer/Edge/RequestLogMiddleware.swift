import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// One line per request, at info: method, path, status, duration, the application's name (never its
/// id) and a request id. Only the path: a query string, the headers (the application id among them) and
/// the body may all carry secrets, so none is logged. The request id is the client's `X-Request-ID` when
/// it is a plain token, or a new one; it is echoed back, and so do the lines the request's own logger
/// writes below this middleware (a fault, an unavailable store).
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    static var header: HTTPField.Name { HTTPField.Name("X-Request-ID")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = Self.requestID(given: request.headers[Self.header])
        var context = context
        // One request id on every line: ours, which the client gets back, not Hummingbird's own as well.
        context.logger[metadataKey: "hb.request.id"] = nil
        context.logger[metadataKey: "request.id"] = .string(id)
        context.facts.id = id
        let started = ContinuousClock.now
        var response = try await RequestFacts.$current.withValue(context.facts) { try await next(request, context) }
        response.headers[Self.header] = id
        // Counted by the limiter and logged in its summary instead (`RefusalSummary`).
        guard !context.facts.refusedWhileLimited else { return response }
        context.logger.info(
            "request",
            metadata: [
                "http.method": "\(request.method.rawValue)",
                "http.path": "\(Self.loggable(path: request.uri.path))",
                "http.status": "\(response.status.code)",
                "duration_ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
                "application": "\(context.facts.application?.name ?? "-")",
            ]
        )
        return response
    }

    /// Paths longer than this are cut in the log: a client may send 60 KB of path on every request.
    static let maxLoggedPathBytes = 256

    /// The path as logged: cut after `maxLoggedPathBytes`, and marked so.
    static func loggable(path: String) -> String {
        let utf8 = path.utf8
        guard utf8.count > maxLoggedPathBytes else { return path }
        var end = utf8.index(utf8.startIndex, offsetBy: maxLoggedPathBytes)
        // Cut between characters, never inside one: a UTF-8 continuation byte is 0b10xxxxxx.
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[..<end], as: UTF8.self) + "…(cut; \(utf8.count) bytes)"
    }

    /// The client's id if it is 1 to 128 letters, digits, '-', '_' or '.', so that it cannot forge log
    /// lines or carry anything long; otherwise 16 random bytes in hex.
    static func requestID(given: String?) -> String {
        if let given, PlainToken.isPlain(given, maxBytes: 128, allowingDot: true) {
            return given
        }
        // Two 64-bit draws (a system call each) written out as hex by hand: it runs on every request.
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for (half, word) in [generator.next(), generator.next()].enumerated() {
                for nibble in 0..<16 {
                    buffer[half * 16 + nibble] = digits[Int((word >> UInt64(60 - nibble * 4)) & 0xF)]
                }
            }
            return 32
        }
    }
}

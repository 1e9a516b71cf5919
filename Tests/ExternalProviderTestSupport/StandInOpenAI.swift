import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization

/// A stand-in for OpenAI's `GET /v1/models` on loopback, answering as OpenAI does. The key picks the
/// answer: `invalid` → 401 invalid_api_key, `slow` → no answer for 3 s, `error500`, `ratelimit`,
/// `redirect`; any other key is valid, unless the organization is `org-wrong` (401
/// mismatched_organization). It records the credentials each request carried.
public final class StandInOpenAI: Sendable {
    public struct Seen: Equatable, Sendable {
        public let authorization: String?
        public let organization: String?

        public init(authorization: String?, organization: String?) {
            self.authorization = authorization
            self.organization = organization
        }
    }

    public init() {}

    private let seen = Mutex<[Seen]>([])
    private let redirectTargetSeen = Mutex<[Seen]>([])

    public var requests: [Seen] { seen.withLock { $0 } }
    /// What reached the place every redirect points to: only a client that followed one gets there.
    public var redirectTargetHits: [Seen] { redirectTargetSeen.withLock { $0 } }

    /// Runs `body` with the stand-in's base URL while it listens on a free port.
    public func run(_ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/v1/models") { request, _ in try await self.answer(request) }
        router.get("/elsewhere") { request, _ in
            let hit = Seen(authorization: request.headers[.authorization], organization: request.headers[HTTPField.Name("OpenAI-Organization")!])
            self.redirectTargetSeen.withLock { $0.append(hit) }
            return Response(status: .ok)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)")
        }
    }

    private func answer(_ request: Request) async throws -> Response {
        let authorization = request.headers[.authorization]
        let organization = request.headers[HTTPField.Name("OpenAI-Organization")!]
        seen.withLock { $0.append(Seen(authorization: authorization, organization: organization)) }
        let key = authorization?.replacingOccurrences(of: "Bearer ", with: "") ?? ""
        if key.contains("slow") {
            try await Task.sleep(for: .seconds(3))
        }
        if key.contains("invalid") || key.isEmpty {
            return Self.error(.unauthorized, code: "invalid_api_key", message: "Incorrect API key provided: \(key.prefix(3))***\(key.suffix(4)). You can find your API key at https://platform.openai.com/account/api-keys.")
        }
        if key.contains("error500") { return Self.error(.internalServerError, code: nil, message: "The server had an error while processing your request.") }
        if key.contains("ratelimit") { return Self.error(.tooManyRequests, code: "rate_limit_exceeded", message: "Rate limit reached.") }
        if key.contains("redirect") { return Response(status: .found, headers: [.location: "/elsewhere"]) }
        if organization == "org-wrong" {
            return Self.error(.unauthorized, code: "mismatched_organization", message: "OpenAI-Organization header should match organization for API key")
        }
        let models = #"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"}]}"#
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: models)))
    }

    private static func error(_ status: HTTPResponse.Status, code: String?, message: String) -> Response {
        let codeJSON = code.map { "\"\($0)\"" } ?? "null"
        let body = #"{"error":{"message":"\#(message)","type":"invalid_request_error","param":null,"code":\#(codeJSON)}}"#
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

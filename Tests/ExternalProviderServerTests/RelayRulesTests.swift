import AsyncHTTPClient
import ExternalProviderCore
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

@testable import ExternalProviderServer

@Suite("The relay's rules: the path it forwards, the headers it keeps, the application id it reads")
struct RelayRulesTests {
    @Test("the remainder goes under the API root's own path, segment by segment as sent, with the query")
    func paths() throws {
        let path = try RelayPath(rawPath: "/relay/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", routeSegments: 2)
        #expect(path.url(base: "https://g.example/prefix", query: "alt=sse") == "https://g.example/prefix/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        #expect(try RelayPath(rawPath: "/open_ai/v1/files/a%20b", routeSegments: 2).url(base: "http://o/v1", query: nil) == "http://o/v1/files/a%20b")
    }

    @Test("empty, dot and encoded-slash segments are refused, never normalised", arguments: [
        "//open_ai/v1/models", "/open_ai//v1/models", "/open_ai/v1//models", "/open_ai/v1/../../admin", "/open_ai/v1/./models",
        "/open_ai/v1/%2e%2e/admin", "/open_ai/v1/%2E/x", "/open_ai/v1/a%2Fb", "/open_ai/v1/a%5cb", "/open_ai/v1/a\\b", "/open_ai/v1/models/",
        "/open_ai/v1", "open_ai/v1/models", "/open_ai/v1/%00", "/open_ai/v1/%zz",
    ])
    func refusedPaths(raw: String) {
        #expect(throws: RelayPath.refusal) { try RelayPath(rawPath: raw, routeSegments: 2) }
    }

    @Test("every caller credential, cookies, Origin, the host and hop-by-hop headers stay here; the stored key goes in the provider's header")
    func headers() throws {
        let caller: HTTPFields = [
            .authorization: "Bearer app-id", HTTPField.Name("x-api-key")!: "app-id", HTTPField.Name("x-goog-api-key")!: "app-id",
            HTTPField.Name("X-Application-ID")!: "app-id", HTTPField.Name("X-User-ID")!: "u", .cookie: "s=1", .origin: "https://page",
            HTTPField.Name("OpenAI-Organization")!: "org-caller", .connection: "keep-alive", .contentType: "application/json",
            HTTPField.Name("anthropic-beta")!: "tools-2024",
        ]
        let kept = try RelayHeaders(caller, query: "beta=true")
        #expect(kept.passed.map(\.name) == ["Content-Type", "anthropic-beta"])
        let request = kept.upstreamRequest(
            method: .post, url: "https://a/v1/messages", key: ProviderKey(apiKey: "sk-ant-stored"), provider: .anthropic, body: .none, declaredLength: nil)
        #expect(request.headers["x-api-key"] == ["sk-ant-stored"] && request.headers["anthropic-version"] == ["2023-06-01"])
        #expect(request.headers["authorization"].isEmpty && request.headers["x-goog-api-key"].isEmpty)
        // The caller's own version passes instead of the default.
        let versioned = try RelayHeaders([HTTPField.Name("anthropic-version")!: "2026-10-21"], query: nil).upstreamRequest(
            method: .post, url: "https://a/v1/messages", key: ProviderKey(apiKey: "k"), provider: .anthropic, body: .none, declaredLength: nil)
        #expect(versioned.headers["anthropic-version"] == ["2026-10-21"])
    }

    @Test("a key in the query is refused, whatever its case or encoding", arguments: ["key=abc", "alt=sse&KEY=abc", "k%65y=abc", "key"])
    func keyInQuery(query: String) {
        #expect(throws: RelayHeaders.keyInQuery) { try RelayHeaders([:], query: query) }
    }

    @Test("the application id is read from whichever header an SDK puts its key in; two that differ are refused")
    func applicationIDs() throws {
        #expect(try Authenticator.presentedID([.authorization: "Bearer id-1"]) == "id-1")
        #expect(try Authenticator.presentedID([HTTPField.Name("x-api-key")!: "id-1"]) == "id-1")
        #expect(try Authenticator.presentedID([HTTPField.Name("x-goog-api-key")!: "id-1", HTTPField.Name("X-Application-ID")!: "id-1"]) == "id-1")
        #expect(try Authenticator.presentedID([.authorization: "Basic dXNlcjpwYXNz"]) == nil)
        #expect(throws: Authenticator.conflictingIDs) {
            try Authenticator.presentedID([.authorization: "Bearer id-1", HTTPField.Name("x-api-key")!: "id-2"])
        }
    }
}

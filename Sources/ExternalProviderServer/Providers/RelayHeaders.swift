import AsyncHTTPClient
import ExternalProviderCore
import HTTPTypes
import NIOCore
import NIOHTTP1

/// What of a caller's request goes to the provider, and what of the provider's answer comes back.
///
/// Every credential a caller may send stays here: its application id, wherever an SDK put it
/// (`Authorization`, `x-api-key`, `x-goog-api-key`, `X-Application-ID`), and its choice of OpenAI
/// organization or project, since the stored key decides. So do `X-User-ID`, cookies, `Origin`
/// (Anthropic refuses a request that has one), `Accept-Encoding`, the host and hop-by-hop headers. The stored key then goes
/// in the provider's own header. A `key` query parameter, which Gemini would read as a key and which ends
/// up in access logs, is refused.
struct RelayHeaders {
    static let dropped = Set([
        "authorization", "x-api-key", "x-goog-api-key", "x-application-id", "x-user-id", "openai-organization", "openai-project",
        "cookie", "origin", "host", "content-length", "expect",
        // Answers come back uncompressed, so that the usage they report can be read as they pass.
        "accept-encoding",
    ]).union(hopByHop)

    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    static let keyInQuery = Problem(
        .badRequest,
        "A relayed request must not carry a 'key' query parameter: send the application id in a header (x-goog-api-key, x-api-key, Authorization or X-Application-ID).",
        answeredBeforeBody: true)

    /// The caller's headers that pass.
    let passed: [(name: String, value: String)]

    init(_ headers: HTTPFields, query: String?) throws(Problem) {
        if let query, Self.names(in: query).contains("key") { throw Self.keyInQuery }
        passed = headers.filter { !Self.dropped.contains($0.name.canonicalName) }.map { ($0.name.rawName, $0.value) }
    }

    /// The request to the provider: the passed headers, the provider's defaults the caller did not send,
    /// the stored key in its header, and the body as read ahead.
    func upstreamRequest(
        method: HTTPRequest.Method, url: String, key: ProviderKey, provider: Provider, body: OutgoingBody, declaredLength: Int64?
    ) -> HTTPClientRequest {
        let profile = provider.profile
        var upstream = HTTPClientRequest(url: url)
        upstream.method = HTTPMethod(rawValue: method.rawValue)
        for (name, value) in passed {
            upstream.headers.add(name: name, value: value)
        }
        for header in profile.defaultHeaders where !upstream.headers.contains(name: header.name) {
            upstream.headers.add(name: header.name, value: header.value)
        }
        for header in profile.credentialHeaders(key) {
            upstream.headers.add(name: header.name, value: header.value)
        }
        switch body {
        case .none: break
        case .complete(let buffer): upstream.body = .bytes(buffer)
        case .streaming(let upload): upstream.body = .stream(upload, length: declaredLength.map { .known($0) } ?? .unknown)
        }
        return upstream
    }

    /// The parameter names of a query, percent-decoded and lowercased.
    static func names(in query: String) -> [String] {
        query.split(separator: "&").map { pair in
            let name = pair.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            return (name.removingPercentEncoding ?? name).lowercased()
        }
    }

    /// The provider's answer headers that come back: all but hop-by-hop ones, `Set-Cookie` and the
    /// length (set again for the body as it is sent).
    static func passedBack(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            let lowered = name.lowercased()
            guard !hopByHop.contains(lowered), lowered != "set-cookie", lowered != "content-length", let fieldName = HTTPField.Name(name)
            else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    static func contentLength(_ headers: HTTPHeaders) -> Int? {
        headers.first(name: "content-length").flatMap(Int.init)
    }
}

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

@Suite("Application ids, browser defences and their order, over HTTP")
struct SecurityOverHTTPTests {
    static let create = #"{"user":"auth0|ada","open_AI":{"api_key":"sk-proj-security-0123456789Wxyz"}}"#
    static let unauthorized = "Invalid Authentication: missing or unknown X-Application-ID"

    @Test("a missing, unknown or revoked X-Application-ID gets 401 and changes nothing")
    func unauthorized() async throws {
        let server = try await TestServer()
        let revoked = try await server.store.registerApplication(named: "old")
        _ = try await server.store.revokeApplication(named: "old")
        try await server.run { client in
            for answer in [
                try await client.post("create", Self.create, anonymous: true),
                try await client.post("create", Self.create, applicationID: ""),
                try await client.post("create", Self.create, applicationID: "not-a-registered-id"),
                try await client.post("create", Self.create, applicationID: revoked),
            ] {
                #expect(answer.status == .unauthorized)
                #expect(answer.body == Self.unauthorized)
                #expect(answer.headers[.contentType] == "text/plain; charset=utf-8")
            }
        }
        #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
    }

    @Test("a revoked id stops working within a second: it is taken on trust for half a second at most")
    func revocationWithinASecond() async throws {
        let clock = Mutex(ContinuousClock.now)
        let server = try await TestServer(recentlyValid: RecentlyValidApplications(now: { clock.withLock { $0 } }))
        let id = try await server.store.registerApplication(named: "soon-revoked")
        try await server.run { client in
            #expect(try await client.post("update", #"{"user":"u"}"#, applicationID: id).status == .notFound)
            _ = try await server.store.revokeApplication(named: "soon-revoked")
            // The id was found valid a moment ago: for up to half a second it is taken on trust...
            clock.withLock { $0 += .milliseconds(499) }
            #expect(try await client.post("update", #"{"user":"u"}"#, applicationID: id).status == .notFound)
            // ...and no longer, leaving the other half of the second to a read under way as it was revoked.
            clock.withLock { $0 += .milliseconds(1) }
            #expect(try await client.post("update", #"{"user":"u"}"#, applicationID: id).status == .unauthorized)
        }
    }

    @Test("past 20 failures a minute an address gets 429 with Retry-After; a valid id is never blocked")
    func rateLimit() async throws {
        let clock = Mutex(ContinuousClock.now)
        let limiter = FailedAttemptLimiter(now: { clock.withLock { $0 } })
        let server = try await TestServer(limiter: limiter)
        try await server.run { client in
            for _ in 0..<20 {
                #expect(try await client.post("update", #"{"user":"u"}"#, applicationID: "wrong").status == .unauthorized)
            }
            let limited = try await client.post("update", #"{"user":"u"}"#, applicationID: "wrong")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "60")
            #expect(limited.body == "Too many failed X-Application-ID attempts from this address; retry after 60 seconds.")
            #expect(try await client.post("update", #"{"user":"u"}"#, anonymous: true).status == .tooManyRequests)

            #expect(try await client.post("create", Self.create).status == .ok)

            clock.withLock { $0 = $0.advanced(by: .seconds(45)) }
            #expect(try await client.post("update", #"{"user":"u"}"#, anonymous: true).headers[.retryAfter] == "15")
            clock.withLock { $0 = $0.advanced(by: .seconds(16)) }
            #expect(try await client.post("update", #"{"user":"u"}"#, anonymous: true).status == .unauthorized)
        }
    }

    @Test("a Host that is not this server gets 403 before anything else: DNS rebinding")
    func rebinding() async throws {
        // The router test client always says `Host: localhost`, i.e. port 80; this server listens on 1000.
        let server = try await TestServer(access: AccessPolicy(boundHost: "127.0.0.1", port: 1000))
        try await server.run { client in
            let answer = try await client.post("create", Self.create, anonymous: true)
            #expect(answer.status == .forbidden)
            #expect(answer.body == "The Host header does not name this server; start it with --allow-host NAME to serve another name.")
            #expect(try await client.send("/health", method: .get).status == .forbidden)
            #expect(try await client.send("/no/such/path", method: .get).status == .forbidden)
        }
        #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
    }

    @Test("an Origin not allowed gets 403 before a 404 or a 405 could say which paths and methods exist")
    func originBeforeRouting() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let evil: HTTPFields = [.origin: "https://evil.example"]
            let wrongMethod = try await client.send("/external_provider/api_key/create", method: .get)
            let wrongMethodFromPage = try await client.send("/external_provider/api_key/create", method: .get, headers: evil)
            let noPath = try await client.send("/no/such/path", method: .get)
            let noPathFromPage = try await client.send("/no/such/path", method: .get, headers: evil)
            #expect(wrongMethod.status == .methodNotAllowed && noPath.status == .notFound)
            #expect(wrongMethodFromPage.status == .forbidden && noPathFromPage.status == .forbidden)
        }
    }

    @Test("an Origin not allowed gets 403, valid application id or not; an allowed one gets CORS headers")
    func origins() async throws {
        let server = try await TestServer(access: AccessPolicy(boundHost: "127.0.0.1", port: 80, allowedOrigins: ["https://app.example.com/"]))
        try await server.run { client in
            let evil = try await client.post("create", Self.create, headers: [.origin: "https://evil.example"])
            #expect(evil.status == .forbidden)
            #expect(evil.body == "Requests from this Origin are not allowed; start the server with --allow-origin ORIGIN to allow a web page.")
            #expect(evil.headers[.accessControlAllowOrigin] == nil)
            #expect(try await client.post("create", Self.create, headers: [.origin: "null"]).status == .forbidden)

            let preflight = try await client.send(
                "/external_provider/api_key/create", method: .options,
                headers: [.origin: "https://app.example.com", .accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(preflight.headers[.accessControlAllowHeaders] == "Content-Type, X-Application-ID")
            let deniedPreflight = try await client.send(
                "/external_provider/api_key/create", method: .options,
                headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST"])
            #expect(deniedPreflight.status == .forbidden)
            #expect(try await client.send("/external_provider/api_key/create", method: .options).status == .methodNotAllowed)

            let allowed = try await client.post("create", Self.create, headers: [.origin: "https://app.example.com"])
            #expect(allowed.status == .ok)
            #expect(allowed.headers[.accessControlAllowOrigin] == "https://app.example.com")
            let allowedError = try await client.post("create", Self.create, headers: [.origin: "https://app.example.com"])
            #expect(allowedError.status == .conflict)
            #expect(allowedError.headers[.accessControlAllowOrigin] == "https://app.example.com")
        }
        #expect(try await server.store.account(for: UserID(trusted: "auth0|ada"))?.keys.count == 1)
    }

    @Test("order: Origin (403), then the application id (401), then Content-Type (415) and the rest")
    func order() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let body = String(repeating: "x", count: 70_000)
            let badOrigin = try await client.post("create", body, contentType: "text/plain", anonymous: true, headers: [.origin: "https://evil.example"])
            #expect(badOrigin.status == .forbidden)
            let noID = try await client.post("create", body, contentType: "text/plain", anonymous: true)
            #expect(noID.status == .unauthorized)
            let wrongType = try await client.post("create", body, contentType: "text/plain")
            #expect(wrongType.status == .unsupportedMediaType)
            let tooLarge = try await client.post("create", body)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try await client.send("/external_provider/api_key/create", method: .get).status == .methodNotAllowed)
        }
    }
}

@Suite("Which Host names are this server")
struct AccessPolicyTests {
    let policy = AccessPolicy(boundHost: "127.0.0.1", port: 1000, allowedHosts: ["keys.internal", "proxy.example:443"])

    @Test("local names on the bound port, names allowed without a port on any port or none, and allowed name:port pass", arguments: [
        "localhost:1000", "LOCALHOST:1000", "127.0.0.1:1000", "[::1]:1000", "keys.internal:1000", "keys.internal", "keys.internal:8443",
        "proxy.example:443",
    ])
    func allowed(host: String) {
        #expect(policy.allowsHost(host))
    }

    @Test("other names, other ports and malformed values are refused", arguments: [
        "attacker.example:1000", "localhost", "localhost:1001", "127.0.0.1:80", "proxy.example:1000", "localhost:abc", "[::1]", "",
        "localhost.attacker.example:1000", "127.0.0.1.nip.io:1000", "keys.internal:abc", "keys.internal.attacker.example",
    ])
    func refused(host: String) {
        #expect(!policy.allowsHost(host))
    }

    @Test("an IPv6 bound host is matched in brackets")
    func ipv6() {
        #expect(AccessPolicy(boundHost: "::1", port: 5).allowsHost("[::1]:5"))
        #expect(AccessPolicy(boundHost: "0.0.0.0", port: 5).allowsHost("0.0.0.0:5"))
    }
}

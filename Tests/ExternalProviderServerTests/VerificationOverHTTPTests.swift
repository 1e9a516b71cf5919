import AsyncHTTPClient
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
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

@Suite("Checking keys with OpenAI before storing them", .serialized)
struct VerificationOverHTTPTests {
    static let invalidMessage = "Invalid Authentication, Incorrect API key provided or organization: "

    /// Runs `test` against a server whose verifier asks `baseURL` (the stand-in unless given), with a
    /// timeout of 1.5 s: room for a loaded machine, and still short of the slow answer (3 s).
    func withVerifyingServer(
        baseURL: String? = nil, _ test: @Sendable (APIClient, TestServer, StandInOpenAI) async throws -> Void
    ) async throws {
        let openAI = StandInOpenAI()
        try await openAI.run { standInURL in
            let client = ProviderClient.makeClient(timeout: .milliseconds(1500))
            // The verifier logs into the server's capture, so its lines are searched for keys too.
            let logs = LogCapture()
            let verifier = ProviderClient(
                client: client, roots: ProviderRoots(baseURLs: [.openAI: baseURL ?? standInURL]), timeout: .milliseconds(1500), logger: logs.logger())
            let server = try await TestServer(verifier: verifier, logs: logs)
            do {
                try await server.run { api in try await test(api, server, openAI) }
                try await client.shutdown()
            } catch {
                try await client.shutdown()
                throw error
            }
        }
    }

    func create(_ key: String, organization: String? = nil) -> String {
        let org = organization.map { #","organization_key":"\#($0)""# } ?? ""
        return #"{"user":"auth0|ada","open_AI":{"api_key":"\#(key)"\#(org)}}"#
    }

    @Test("a key OpenAI accepts is stored with the time it was verified; the check sends the key and organization")
    func accepted() async throws {
        try await withVerifyingServer { api, server, openAI in
            let answer = try await api.post("create", create("sk-proj-valid-0123456789abcdWxyz", organization: "org-good"))
            #expect(answer.status == .ok)
            #expect(openAI.requests == [.init(authorization: "Bearer sk-proj-valid-0123456789abcdWxyz", organization: "org-good")])
            #expect(try await server.verifiedAt(user: "auth0|ada") != nil)
        }
    }

    @Test("verified_at is when OpenAI accepted the pair: set by the check, kept by a rename, refreshed by a new pair")
    func verifiedAtFollowsThePair() async throws {
        try await withVerifyingServer { api, server, _ in
            // SQLite keeps milliseconds: bounds a millisecond wide on each side.
            func stamped(_ operation: String, _ body: String) async throws -> (before: Date, after: Date) {
                let before = Date() - 0.001
                #expect(try await api.post(operation, body).status == .ok, "\(body)")
                return (before, Date() + 0.001)
            }
            let created = try await stamped("create", create("sk-proj-valid-0123456789abcdWxyz"))
            let first = try #require(try await server.verifiedAt(user: "auth0|ada"))
            #expect(first >= created.before && first <= created.after)
            try await Task.sleep(for: .milliseconds(20))
            _ = try await stamped("update", #"{"user":"auth0|ada","open_AI":{"api_key_name":"renamed"}}"#)
            #expect(try await server.verifiedAt(user: "auth0|ada") == first)
            let repaired = try await stamped("update", #"{"user":"auth0|ada","open_AI":{"organization_key":"org-new"}}"#)
            let second = try #require(try await server.verifiedAt(user: "auth0|ada"))
            #expect(second > first && second >= repaired.before && second <= repaired.after)
        }
    }

    @Test("a wrong key or organization gets 401 with OpenAI's code, never the key; nothing is stored", arguments: [
        ("sk-proj-invalid-0123456789abWxyz", nil as String?, "invalid_api_key"),
        ("sk-proj-valid-0123456789abcdWxyz", "org-wrong", "mismatched_organization"),
    ])
    func rejected(key: String, organization: String?, code: String) async throws {
        try await withVerifyingServer { api, server, _ in
            let answer = try await api.post("create", create(key, organization: organization))
            #expect(answer.status == .unauthorized)
            #expect(answer.body == Self.invalidMessage + code)
            #expect(!answer.body.contains(key.suffix(4)))
            #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
        }
    }

    @Test("no usable answer is a 502 that says why, a slow one a 504; nothing is stored", arguments: [
        ("sk-proj-error500-0123456789Wxyz", HTTPResponse.Status.badGateway, "OpenAI answered 500"),
        ("sk-proj-ratelimit-012345678Wxyz", .badGateway, "OpenAI is limiting requests (429)"),
        ("sk-proj-redirect-0123456789Wxyz", .badGateway, "redirect (302), which is not followed"),
        ("sk-proj-slow-0123456789abcdWxyz", .gatewayTimeout, "no answer within the verify timeout"),
    ])
    func unavailable(key: String, status: HTTPResponse.Status, reason: String) async throws {
        try await withVerifyingServer { api, server, openAI in
            let answer = try await api.post("create", create(key))
            #expect(answer.status == status)
            #expect(answer.body.hasPrefix("The key could not be checked with OpenAI, so nothing was stored: "))
            #expect(answer.body.contains(reason))
            #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
            #expect(openAI.requests.count == 1)
            #expect(openAI.redirectTargetHits.isEmpty, "a redirect was followed")
        }
    }

    @Test("an OpenAI that never completes the connection is a 504 after the connect timeout; nothing is stored")
    func connectTimeout() async throws {
        let listener = try StuffedListener()
        defer { listener.close() }
        try await withVerifyingServer(baseURL: "http://127.0.0.1:\(listener.port)") { api, server, _ in
            let answer = try await api.post("create", create("sk-proj-valid-0123456789abcdWxyz"))
            #expect(answer.status == .gatewayTimeout)
            #expect(answer.body.contains("no answer within the verify timeout"))
            #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
        }
    }

    @Test("a refused connection is a 502")
    func refused() async throws {
        let closedPort = try await { () async throws -> Int in
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress!.port!
            try await channel.close()
            return port
        }()
        try await withVerifyingServer(baseURL: "http://127.0.0.1:\(closedPort)") { api, server, _ in
            let answer = try await api.post("create", create("sk-proj-valid-0123456789abcdWxyz"))
            #expect(answer.status == .badGateway)
            #expect(answer.body.contains("refused"))
            #expect(try await server.store.account(for: UserID(trusted: "auth0|ada")) == nil)
        }
    }

    @Test("updates check what changes: a new organization with the stored key, a cleared one with none; names nothing")
    func updates() async throws {
        try await withVerifyingServer { api, server, openAI in
            for (operation, body) in [
                ("create", create("sk-proj-valid-0123456789abcdWxyz", organization: "org-a")),
                ("update", #"{"user":"auth0|ada","open_AI":{"organization_key":"org-b"}}"#),
                ("update", #"{"user":"auth0|ada","open_AI":{"organization_key":""}}"#),
                ("update", #"{"user":"auth0|ada","open_AI":{"api_key_name":"renamed","api_key":""}}"#),
            ] {
                let answer = try await api.post(operation, body)
                #expect(answer.status == .ok, "\(body)")
            }
            let key = "Bearer sk-proj-valid-0123456789abcdWxyz"
            #expect(openAI.requests == [
                .init(authorization: key, organization: "org-a"),
                .init(authorization: key, organization: "org-b"),
                .init(authorization: key, organization: nil),
            ])

            let refused = try await api.post("update", #"{"user":"auth0|ada","open_AI":{"organization_key":"org-wrong"}}"#)
            #expect(refused.status == .unauthorized)
            #expect(refused.body == Self.invalidMessage + "mismatched_organization")
            let stored = try await server.store.account(for: UserID(trusted: "auth0|ada"))?.keys[.openAI]
            #expect(stored == ProviderKey(apiKey: "sk-proj-valid-0123456789abcdWxyz", apiKeyName: "renamed", organizationKey: nil))
        }
    }

    @Test("a request the state refuses is answered without asking OpenAI")
    func stateFirst() async throws {
        try await withVerifyingServer { api, _, openAI in
            let answer = try await api.post("update", #"{"user":"nobody","open_AI":{"api_key":"sk-proj-valid-0123456789abcdWxyz"}}"#)
            #expect(answer.status == .notFound)
            #expect(openAI.requests.isEmpty)
        }
    }
}

@Suite("The check-then-write retry, over HTTP")
struct RetryOverHTTPTests {
    @Test("a new organization checked with a stored key that is replaced during every check gets 409 after three checks; nothing of it is stored")
    func changedDuringEveryCheck() async throws {
        let meddled = Mutex<(any KeyStore)?>(nil)
        // Accepts every key, but while each check runs another write replaces the user's key, as a second
        // client racing this one would.
        let verifier = FakeVerifier(meanwhile: { check in
            guard let store = meddled.withLock({ $0 }) else { return }
            let patch = try! KeyPatch(provider: .openAI, apiKey: "sk-meddled-\(check)-0000000000", apiKeyName: nil, organizationKey: nil)
            _ = try? await store.perform(.update(patch), for: UserID(trusted: "auth0|raced"))
        })
        let server = try await TestServer(verifier: verifier)
        _ = try await server.store.perform(
            .create(try NewKey(provider: .openAI, apiKey: "sk-first-raced-000000000", apiKeyName: nil, organizationKey: nil)),
            for: UserID(trusted: "auth0|raced"))
        meddled.withLock { $0 = server.store }
        try await server.run { client in
            // The check is of (stored key, new organization): each time, the stored key is another by the end.
            let answer = try await client.post("update", #"{"user":"auth0|raced","open_AI":{"organization_key":"org-new"}}"#)
            #expect(answer.status == .conflict)
            #expect(answer.body.contains("changed while it was being checked"))
        }
        #expect(verifier.asked.count == KeyService.verificationAttempts)
        let stored = try await server.store.account(for: UserID(trusted: "auth0|raced"))?.keys[.openAI]
        #expect(stored == ProviderKey(apiKey: "sk-meddled-3-0000000000", apiKeyName: nil, organizationKey: nil))
    }
}

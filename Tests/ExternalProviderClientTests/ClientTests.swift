import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import OpenAPIRuntime
import Testing

@testable import ExternalProviderClient
@testable import ExternalProviderServer

/// The Swift client against the server as `serve` assembles it (`buildApplication`, a temporary data
/// dir, the stand-in OpenAI), listening on a free port.
@Suite("The Swift client against a live server")
struct ClientTests {
    struct Live {
        let client: ExternalProviderClient
        let url: URL
        let dataDirectory: String
    }

    static func withLiveServer(_ body: @Sendable (Live) async throws -> Void) async throws {
        try await StandInOpenAI().run { openAI in
            let temporary = try TemporaryDirectory()
            let directory = temporary.file("data")
            let settings = Settings(
                given: [
                    ServeSettings.port.declaration: ["0"], StoreSettings.dataDir.declaration: [directory], ServeSettings.logLevel.declaration: ["trace"],
                    ServeSettings.baseURLs[.openAI]!.declaration: [openAI], ServeSettings.verifyTimeout.declaration: ["1.5"],
                ], environment: [:])
            let logs = LogCapture()
            let app = try await buildApplication(settings, logger: logs.logger())
            let id = try await app.test(.live) { client in
                let url = URL(string: "http://127.0.0.1:\(try #require(client.port))")!
                let id = try ExternalProviderClient.applicationID(inDataDirectory: URL(fileURLWithPath: directory))
                try await body(Live(client: ExternalProviderClient(serverURL: url, applicationID: id), url: url, dataDirectory: directory))
                return id
            }
            // At trace level, nothing the tests sent is in the log: no key, no application id.
            let log = logs.text
            #expect(log.contains("serving"))
            for secret in [id, "sk-swift-client-0123456789Wxyz", "sk-swift-client-second-000Abcd", "sk-invalid-client-000000000000"] {
                #expect(!log.contains(secret), "\(secret.prefix(6))… reached the log")
            }
        }
    }

    @Test("the keys API: put, list, change, models and remove answer the domain's types, the key masked")
    func keysAPI() async throws {
        try await Self.withLiveServer { live in
            let client = live.client
            let (stored, created) = try await client.putKey(user: "auth0|keys", provider: .openAI, apiKey: "sk-swift-client-0123456789Wxyz", name: "work")
            #expect(created && stored.maskedAPIKey == "sk-...Wxyz" && stored.name == "work" && stored.provider == .openAI)
            guard case .valid = stored.health else { Issue.record("a checked key is valid, not \(stored.health)"); return }
            let (again, createdAgain) = try await client.putKey(user: "auth0|keys", provider: .openAI, apiKey: "sk-swift-client-0123456789Wxyz", name: "work")
            #expect(!createdAgain && again.maskedAPIKey == stored.maskedAPIKey)
            #expect(try await client.changeKey(user: "auth0|keys", provider: .openAI, name: .clear, organization: .set("org-9")).organization == "org-9")
            let listed = try await client.keys(of: "auth0|keys")
            #expect(listed.map(\.provider) == [.openAI] && listed.first?.name == nil)
            #expect(try await client.models(user: "auth0|keys", provider: .openAI).map(\.id) == ["gpt-4o"])
            try await client.removeKey(user: "auth0|keys", provider: .openAI)
            try await client.removeKey(user: "auth0|keys", provider: .openAI)
            #expect(try await client.keys(of: "auth0|keys").isEmpty)
            await #expect(throws: ExternalProviderClientError.badRequest("Field 'organization' is OpenAI's only: Gemini keys have no organization.")) {
                _ = try await client.putKey(user: "auth0|keys", provider: .gemini, apiKey: "AIza-0123456789abcdefWxyz", organization: "org-1")
            }
        }
    }

    @Test("create, update, listModels and delete answer the domain's types, the key masked")
    func operations() async throws {
        try await Self.withLiveServer { live in
            let client = live.client
            let created = try await client.create(user: "auth0|swift", apiKey: "sk-swift-client-0123456789Wxyz", name: "work", organization: "org-1")
            #expect(created.openAI == MaskedKey(maskedAPIKey: "sk-...Wxyz", name: "work", organization: "org-1"))
            let updated = try await client.update(user: "auth0|swift", name: .clear, organization: .set("org-2"))
            #expect(updated == StoredKeys(globalID: created.globalID, openAI: MaskedKey(maskedAPIKey: "sk-...Wxyz", name: nil, organization: "org-2")))
            let rekeyed = try await client.update(user: "auth0|swift", apiKey: "sk-swift-client-second-000Abcd")
            #expect(rekeyed.openAI?.maskedAPIKey == "sk-...Abcd" && rekeyed.openAI?.organization == "org-2")
            #expect(try await client.listModels(user: "auth0|swift").map(\.id) == ["gpt-4o"])
            let deleted = try await client.delete(user: "auth0|swift")
            #expect(deleted == StoredKeys(globalID: created.globalID, openAI: nil))
        }
    }

    @Test("each refusal is its own case with the server's sentence")
    func refusals() async throws {
        try await Self.withLiveServer { live in
            let client = live.client
            _ = try await client.create(user: "auth0|swift", apiKey: "sk-swift-client-0123456789Wxyz")
            func expect(_ expected: (String) -> ExternalProviderClientError, containing words: String, _ call: () async throws -> Void) async {
                do {
                    try await call()
                    Issue.record("no error; expected one with '\(words)'")
                } catch {
                    guard let error = error as? ExternalProviderClientError else { Issue.record("\(error)"); return }
                    #expect(error == expected(error.message), "\(error)")
                    #expect(error.message.contains(words), "\(error.message)")
                }
            }
            await expect(ExternalProviderClientError.conflict, containing: "already has an OpenAI key") {
                _ = try await client.create(user: "auth0|swift", apiKey: "sk-swift-client-0123456789Wxyz")
            }
            await expect(ExternalProviderClientError.notFound, containing: "is unknown") { _ = try await client.update(user: "auth0|nobody", name: .set("n")) }
            await expect(ExternalProviderClientError.notFound, containing: "is unknown") { _ = try await client.delete(user: "auth0|nobody") }
            await expect(ExternalProviderClientError.badRequest, containing: "user") { _ = try await client.create(user: "", apiKey: "sk-swift-client-0123456789Wxyz") }
            await expect(ExternalProviderClientError.unauthorized, containing: "invalid_api_key") {
                _ = try await client.create(user: "auth0|refused", apiKey: "sk-invalid-client-000000000000")
            }
            await expect(ExternalProviderClientError.badGateway, containing: "OpenAI") {
                _ = try await client.create(user: "auth0|down", apiKey: "sk-error500-client-00000000000")
            }
            await expect(ExternalProviderClientError.gatewayTimeout, containing: "verify timeout") {
                _ = try await client.create(user: "auth0|slow", apiKey: "sk-slow-client-000000000000000")
            }
            await expect(ExternalProviderClientError.unauthorized, containing: "no OpenAI key") { _ = try await client.listModels(user: "auth0|nobody") }
            await expect(ExternalProviderClientError.contentTooLarge, containing: "65536 bytes") {
                _ = try await client.update(user: "auth0|swift", name: .set(String(repeating: "n", count: 70_000)))
            }

            let store = try await DataDirectory(live.dataDirectory).openStore(masterKeyFile: nil, environment: [:], logger: Logger(label: "test"))
            let keysOnly = try await store.registerApplication(named: "keys-only", scopes: [.keys], boundUser: nil)
            let limited = ExternalProviderClient(serverURL: live.url, applicationID: keysOnly)
            await expect(ExternalProviderClientError.forbidden, containing: "relay") { _ = try await limited.listModels(user: "auth0|swift") }

            let stranger = ExternalProviderClient(serverURL: live.url, applicationID: "not-a-registered-application-id")
            await expect(ExternalProviderClientError.unauthorized, containing: "X-Application-ID") { _ = try await stranger.delete(user: "auth0|swift") }
            // Past the limit of failed ids from one address, the server answers 429.
            for _ in 0..<25 { _ = try? await stranger.delete(user: "auth0|swift") }
            await expect(ExternalProviderClientError.tooManyRequests, containing: "Too many") { _ = try await stranger.delete(user: "auth0|swift") }
        }
    }

    @Test("no server there: unreachable, and the application id is in no message")
    func unreachable() async throws {
        let client = ExternalProviderClient(serverURL: URL(string: "http://127.0.0.1:1")!, applicationID: "secret-application-id")
        do {
            _ = try await client.delete(user: "auth0|swift")
            Issue.record("no error")
        } catch {
            guard case .unreachable = error else { Issue.record("\(error)"); return }
            #expect(error.status == nil && !error.message.contains("secret-application-id"))
        }
    }

    @Test("answers a live server cannot be made to give: 415, 500, 503, another status, an unreadable body")
    func otherAnswers() async throws {
        let cases: [(Int, String, ExternalProviderClientError)] = [
            (415, "Send JSON.", .unsupportedMediaType("Send JSON.")),
            (500, "Internal Server Error.", .internalServerError("Internal Server Error.")),
            (503, "The key store is unavailable just now.", .serviceUnavailable("The key store is unavailable just now.")),
            (418, "No.", .unexpectedStatus(418, "No.")),
        ]
        for (status, sentence, expected) in cases {
            let client = ExternalProviderClient(
                serverURL: URL(string: "http://127.0.0.1")!, applicationID: "id", transport: FixedAnswer(status: status, body: sentence))
            await #expect(throws: expected) { _ = try await client.update(user: "u", name: .set("n")) }
        }
        let garbled = ExternalProviderClient(
            serverURL: URL(string: "http://127.0.0.1")!, applicationID: "id", transport: FixedAnswer(status: 200, body: "{not json", json: true))
        do {
            _ = try await garbled.create(user: "u", apiKey: "sk-x")
            Issue.record("no error")
        } catch {
            guard case .invalidResponse = error else { Issue.record("\(error)"); return }
        }
    }

    @Test("each status maps to its own case and back")
    func statusRoundTrip() {
        for status in [400, 401, 403, 404, 409, 413, 415, 429, 500, 502, 503, 504, 418] {
            #expect(ExternalProviderClientError(status: status, sentence: "s").status == status)
        }
    }

    @Test("the application id comes from a data dir's file, its first line trimmed")
    func applicationIDFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ep-id-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: ExternalProviderClientError.self) { try ExternalProviderClient.applicationID(inDataDirectory: directory) }
        try " abc-123 \nsecond\n".write(to: directory.appendingPathComponent("application-id"), atomically: true, encoding: .utf8)
        #expect(try ExternalProviderClient.applicationID(inDataDirectory: directory) == "abc-123")
    }
}

/// A server that gives one answer to everything.
struct FixedAnswer: ClientTransport {
    let status: Int
    let body: String
    var json = false

    func send(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String) async throws -> (HTTPResponse, HTTPBody?) {
        var response = HTTPResponse(status: .init(code: status))
        response.headerFields[.contentType] = json ? "application/json" : "text/plain; charset=utf-8"
        return (response, HTTPBody(self.body))
    }
}

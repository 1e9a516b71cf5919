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

@Suite("Rejections over HTTP: status, text/plain sentence, nothing changed")
struct RejectionsOverHTTPTests {
    static let created = #"{"user":"auth0|ada","open_AI":{"api_key":"sk-proj-0123456789abcdefghijWxyz","api_key_name":"work"}}"#
    static let plainText = "text/plain; charset=utf-8"

    /// Runs `requests` against a server holding one created key, and checks each answer and that the
    /// stored account is exactly as before.
    func expectRejections(_ cases: [(operation: String, body: String, contentType: String?, status: HTTPResponse.Status, message: String)]) async throws {
        let server = try await TestServer()
        let ada = UserID(trusted: "auth0|ada")
        try await server.run { client in
            #expect(try await client.post("create", Self.created).status == .ok)
            let before = try await server.store.account(for: ada)
            for item in cases {
                let answer = try await client.post(item.operation, item.body, contentType: item.contentType)
                #expect(answer.status == item.status, "\(item.operation) \(item.body)")
                #expect(answer.body == item.message, "\(item.operation) \(item.body)")
                #expect(answer.headers[.contentType] == Self.plainText)
                #expect(try await server.store.account(for: ada) == before)
            }
            #expect(try await server.store.account(for: UserID(trusted: "stranger")) == nil)
        }
    }

    @Test("400: missing body, malformed JSON, wrong types, bad user, oversized fields, malformed schema")
    func badRequests() async throws {
        let long = String(repeating: "a", count: 1025)
        try await expectRejections([
            ("create", "", "application/json", .badRequest, "A JSON request body is required."),
            ("update", "{", "application/json", .badRequest, "The request body is not valid JSON."),
            ("update", "[1]", "application/json", .badRequest, "The request body must be a JSON object."),
            ("update", "null", "application/json", .badRequest, "The request body must be a JSON object."),
            ("update", "{}", "application/json", .badRequest, "Field 'user' is required."),
            ("update", #"{"user":42}"#, "application/json", .badRequest, "Field 'user' must be a string."),
            ("update", #"{"user":null}"#, "application/json", .badRequest, "Field 'user' must be a string, not null."),
            ("update", #"{"user":""}"#, "application/json", .badRequest, "Field 'user' must not be empty."),
            ("update", #"{"user":"a\u0000b"}"#, "application/json", .badRequest, "Field 'user' must not contain control characters."),
            ("update", #"{"user":"\#(String(repeating: "u", count: 257))"}"#, "application/json", .badRequest, "Field 'user' must be at most 256 bytes."),
            ("create", #"{"user":"stranger"}"#, "application/json", .badRequest, "Field 'open_AI.api_key' is required and must not be empty."),
            ("create", #"{"user":"stranger","open_AI":{"api_key":""}}"#, "application/json", .badRequest, "Field 'open_AI.api_key' is required and must not be empty."),
            ("create", #"{"user":"stranger","open_AI":{"api_key":7}}"#, "application/json", .badRequest, "Field 'open_AI.api_key' must be a string."),
            ("create", #"{"user":"stranger","open_AI":"sk-abc"}"#, "application/json", .badRequest, "Field 'open_AI' must be a JSON object."),
            ("update", #"{"user":"auth0|ada","open_AI":{"api_key_name":"\#(long)"}}"#, "application/json", .badRequest, "Field 'open_AI.api_key_name' must be at most 1024 bytes."),
            ("update", #"{"user":"auth0|ada","open_AI":{"api_key":"sk abc"}}"#, "application/json", .badRequest, "Field 'open_AI.api_key' must not contain spaces."),
            ("update", #"{"user":"auth0|ada","schema":{"migration":1}}"#, "application/json", .badRequest, "Field 'schema.semantic' is required."),
            ("update", #"{"user":"auth0|ada","schema":{"migration":1.5,"semantic":"UNKNOWN"}}"#, "application/json", .badRequest, "Field 'schema.migration' must be an integer."),
            ("update", #"{"user":"auth0|ada","open_AI":{"schema":{"migration":1e40,"semantic":"UNKNOWN"}}}"#, "application/json", .badRequest, "Field 'open_AI.schema.migration' must be an integer."),
            ("update", #"{"user":"auth0|ada","schema":{"migration":1,"semantic":"MAJOR_9"}}"#, "application/json", .badRequest, "Field 'schema.semantic' has a value that is not allowed."),
            ("delete", #"{"user":"auth0|ada","open_AI":"yes"}"#, "application/json", .badRequest, "Field 'open_AI' must be a boolean."),
        ])
    }

    @Test("404 for an unknown user or a missing key; 409 for a second create")
    func stateRejections() async throws {
        try await expectRejections([
            ("update", #"{"user":"stranger","open_AI":{"api_key_name":"x"}}"#, "application/json", .notFound, "User 'stranger' is unknown: create a key for it first."),
            ("update", #"{"user":"stranger"}"#, "application/json", .notFound, "User 'stranger' is unknown: create a key for it first."),
            ("delete", #"{"user":"stranger","open_AI":true}"#, "application/json", .notFound, "User 'stranger' is unknown: create a key for it first."),
            ("create", Self.created, "application/json", .conflict, "User 'auth0|ada' already has an OpenAI key: use /external_provider/api_key/update to change it."),
        ])
    }

    @Test("404 for an update of a user whose key was deleted")
    func updateWithoutKey() async throws {
        let server = try await TestServer()
        try await server.run { client in
            #expect(try await client.post("create", Self.created).status == .ok)
            #expect(try await client.post("delete", #"{"user":"auth0|ada","open_AI":true}"#).status == .ok)
            let answer = try await client.post("update", #"{"user":"auth0|ada","open_AI":{"api_key":"sk-new"}}"#)
            #expect(answer.status == .notFound)
            #expect(answer.body == "User 'auth0|ada' has no OpenAI key to update: use /external_provider/api_key/create first.")
        }
    }

    @Test("415 for any Content-Type but application/json")
    func unsupportedMediaType() async throws {
        let message = "Content-Type must be application/json."
        try await expectRejections(
            [nil, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/jsonp"]
                .map { ("update", #"{"user":"auth0|ada","open_AI":{"api_key_name":"x"}}"#, $0, .unsupportedMediaType, message) }
        )
    }

    @Test("a request with no body and no Content-Type is missing its body (400), not of the wrong type")
    func noBodyAtAll() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.send(
                "/external_provider/api_key/create", method: .post, headers: [Authenticator.applicationIDHeader: client.applicationID])
            #expect(answer.status == .badRequest)
            #expect(answer.body == "A JSON request body is required.")
        }
    }

    @Test("application/json with a UTF-8 charset, in any case, is accepted")
    func jsonContentTypes() async throws {
        let server = try await TestServer()
        try await server.run { client in
            _ = try await client.post("create", Self.created)
            for contentType in ["application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"] {
                #expect(try await client.post("update", #"{"user":"auth0|ada"}"#, contentType: contentType).status == .ok)
            }
        }
    }

    @Test("413 for a body over 64 KiB, by declared length or by what arrives")
    func contentTooLarge() async throws {
        let big = #"{"user":"auth0|ada","open_AI":{"api_key_name":""# + String(repeating: "x", count: 70_000) + #""}}"#
        try await expectRejections([("update", big, "application/json", .contentTooLarge, "The request body must be at most 65536 bytes.")])
        let server = try await TestServer()
        try await server.run { client in
            let declared = try await client.post(
                "update", String(repeating: " ", count: 65537), headers: [.contentLength: "65537"])
            #expect(declared.status == .contentTooLarge)
            let atLimit = #"{"user":"auth0|ada"}"# + String(repeating: " ", count: 65536 - 20)
            #expect(try await client.post("update", atLimit).status == .notFound)
        }
    }

    @Test("404 for other paths, 405 with Allow for other methods")
    func pathsAndMethods() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let missing = try await client.send("/external_provider/api_key/rotate", method: .post)
            #expect(missing.status == .notFound)
            #expect(missing.body == "There is no such path on this server.")
            #expect(missing.headers[.contentType] == Self.plainText)

            let wrongMethod = try await client.send("/external_provider/api_key/create", method: .get)
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "POST")
            #expect(wrongMethod.body == "This path accepts POST only.")

            let postHealth = try await client.send("/health", method: .post)
            #expect(postHealth.status == .methodNotAllowed)
            #expect(postHealth.headers[.allow] == "GET, HEAD")
        }
    }

    @Test("the order of checks: path and method, Content-Type, size, JSON and fields, then state")
    func orderOfChecks() async throws {
        let oversized = String(repeating: "x", count: 70_000)
        let server = try await TestServer()
        try await server.run { client in
            let wrongMethod = try await client.send(
                "/external_provider/api_key/create", method: .put, headers: [.contentType: "text/plain"], body: ByteBuffer(string: oversized))
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(try await client.post("create", oversized, contentType: "text/plain").status == .unsupportedMediaType)
            #expect(try await client.post("create", oversized).status == .contentTooLarge)
            #expect(try await client.post("update", #"{"user":"stranger","open_AI":{"api_key":"a b"}}"#).status == .badRequest)
            #expect(try await client.post("update", #"{"user":"stranger","open_AI":{"api_key":"ab"}}"#).status == .notFound)
        }
    }

    @Test("a client that accepts only JSON still gets the text/plain rejection, not a 500")
    func acceptJSONOnly() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.post("update", #"{"user":"stranger"}"#, headers: [.accept: "application/json"])
            #expect(answer.status == .notFound)
            #expect(answer.headers[.contentType] == Self.plainText)
        }
    }
}

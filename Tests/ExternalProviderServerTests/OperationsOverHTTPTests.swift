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

@Suite("The three operations over HTTP")
struct OperationsOverHTTPTests {
    static let key = "sk-proj-0123456789abcdefghijWxyz"
    static let createBody = #"{"user":"auth0|ada","open_AI":{"api_key":"\#(key)","api_key_name":"work","organization_key":"org-42"}}"#

    @Test("create answers the whole metadata, key masked, schema on the outer object and on metadata")
    func create() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.post("create", Self.createBody)
            #expect(answer.status == .ok)
            #expect(answer.headers[.contentType] == "application/json; charset=utf-8")
            #expect(answer.headers[.cacheControl] == "no-store")
            #expect(!answer.body.contains(Self.key))
            let output = try answer.output
            #expect(output.schema == .current)
            #expect(output.metadata.schema == .current)
            #expect(UUID(uuidString: output.metadata.global_id) != nil)
            #expect(output.metadata.open_AI == WireOpenAI(api_key: "sk-...Wxyz", api_key_name: "work", organization_key: "org-42", schema: .current))
        }
        #expect(try await server.store.account(for: UserID(trusted: "auth0|ada"))?.keys[.openAI]?.apiKey == Self.key)
    }

    @Test("update merges fields and keeps global_id; delete removes the key, is idempotent, and keeps global_id")
    func updateThenDelete() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let globalID = try await client.post("create", Self.createBody).output.metadata.global_id

            let updated = try await client.post("update", #"{"user":"auth0|ada","open_AI":{"api_key_name":"","organization_key":"org-7"}}"#)
            #expect(updated.status == .ok)
            let metadata = try updated.output.metadata
            #expect(metadata.global_id == globalID)
            #expect(metadata.open_AI == WireOpenAI(api_key: "sk-...Wxyz", organization_key: "org-7", schema: .current))

            let unchanged = try await client.post("update", #"{"user":"auth0|ada"}"#)
            #expect(unchanged.status == .ok)
            #expect(try unchanged.output.metadata == metadata)

            for _ in 0..<2 {
                let deleted = try await client.post("delete", #"{"user":"auth0|ada","open_AI":true}"#)
                #expect(deleted.status == .ok)
                #expect(try deleted.output.metadata == WireMetadata(global_id: globalID, open_AI: nil, schema: .current))
            }

            let recreated = try await client.post("create", Self.createBody)
            #expect(try recreated.output.metadata.global_id == globalID)
        }
    }

    @Test("delete with open_AI false or absent removes nothing")
    func deleteNothing() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let created = try await client.post("create", Self.createBody).output
            for body in [#"{"user":"auth0|ada","open_AI":false}"#, #"{"user":"auth0|ada"}"#] {
                let answer = try await client.post("delete", body)
                #expect(answer.status == .ok)
                #expect(try answer.output == created)
            }
        }
    }

    @Test("an empty api_key on update keeps the stored key")
    func updateEmptyKey() async throws {
        let server = try await TestServer()
        try await server.run { client in
            _ = try await client.post("create", Self.createBody)
            let answer = try await client.post("update", #"{"user":"auth0|ada","open_AI":{"api_key":""}}"#)
            #expect(answer.status == .ok)
        }
        #expect(try await server.store.account(for: UserID(trusted: "auth0|ada"))?.keys[.openAI]?.apiKey == Self.key)
    }

    @Test("a request's well-formed schema is accepted and ignored")
    func requestSchemaIgnored() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.post(
                "create", #"{"user":"u","schema":{"migration":99,"semantic":"UNKNOWN"},"open_AI":{"api_key":"sk-abc","schema":{"migration":0,"semantic":"MAJOR_0_MINOR_0_PATCH_1"}}}"#)
            #expect(answer.status == .ok)
            #expect(try answer.output.schema == .current)
        }
    }

    @Test("unknown fields are ignored, as generated clients of newer specs may send them")
    func unknownFieldsIgnored() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.post("create", #"{"user":"u","open_AI":{"api_key":"sk-abc","future":1},"extra":[1,2]}"#)
            #expect(answer.status == .ok)
        }
    }

    @Test("health and the spec are served")
    func healthAndSpec() async throws {
        let server = try await TestServer()
        let specPath = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/ExternalProviderAPI/openapi.yaml")
        let spec = try String(contentsOf: specPath, encoding: .utf8)
        try await server.run { client in
            let health = try await client.send("/health", method: .get)
            #expect(health.status == .ok)
            #expect(health.body == "ok")
            #expect(try await client.send("/health", method: .head).status == .ok)
            let served = try await client.send("/openapi.yaml", method: .get)
            #expect(served.status == .ok)
            #expect(served.body == spec)
        }
    }
}

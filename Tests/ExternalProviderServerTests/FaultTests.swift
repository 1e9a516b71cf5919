import ExternalProviderCore
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ExternalProviderServer
@testable import ExternalProviderStore

@Suite("Faults")
struct FaultTests {
    @Test("a store fault answers 500 'Internal Server Error'; the detail goes to the log, the key nowhere")
    func storeFault() async throws {
        let server = try await TestServer()
        let key = "sk-proj-fault-0123456789abcdefWxyz"
        try await server.store.writer.write { db in try db.execute(sql: "DROP TABLE provider_key") }
        try await server.run { client in
            let answer = try await client.post("create", #"{"user":"u","open_AI":{"api_key":"\#(key)"}}"#)
            #expect(answer.status == .internalServerError)
            #expect(answer.body == "Internal Server Error")
            #expect(answer.headers[.contentType] == "text/plain; charset=utf-8")
        }
        #expect(server.logs.text.contains("no such table: provider_key"))
        #expect(!server.logs.text.contains(key))
    }
}

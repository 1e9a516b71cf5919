import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

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
        // The OpenAPI runtime's wrapper of the error describes the whole request; only what it wraps is logged.
        #expect(!server.logs.text.contains(server.applicationID))
    }

    @Test("a stored value that will not open answers 500; the log names whose key, never the key or the id")
    func valueThatWillNotOpen() async throws {
        let server = try await TestServer()
        let key = "sk-proj-unopenable-0123456789abcWxyz"
        try await server.run { client in
            #expect(try await client.post("create", #"{"user":"auth0|sealed","open_AI":{"api_key":"\#(key)"}}"#).status == .ok)
            // The sealed value's last byte changed, as a damaged disk or a tampering hand would.
            try await server.store.writer.write { db in
                try db.execute(sql: """
                    UPDATE provider_key SET api_key = substr(api_key, 1, length(api_key) - 1)
                        || CASE WHEN substr(api_key, -1) = x'00' THEN x'01' ELSE x'00' END
                    """)
            }
            let answer = try await client.post("update", #"{"user":"auth0|sealed","open_AI":{"api_key_name":"renamed"}}"#)
            #expect(answer.status == .internalServerError)
            #expect(answer.body == "Internal Server Error")
        }
        #expect(server.logs.text.contains("the open_ai key of user 'auth0|sealed' did not open"))
        #expect(!server.logs.text.contains(key))
        #expect(!server.logs.text.contains(server.applicationID))
    }
}

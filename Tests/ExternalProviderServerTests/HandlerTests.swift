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
import OpenAPIRuntime
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

@Suite("Handlers, called without HTTP")
struct HandlerTests {
    let handler: APIHandler

    init() throws {
        let store = try SQLiteKeyStore.inMemory()
        handler = APIHandler(
            keys: KeyService(store: store, verifier: nil), models: NoProvider(), health: KeyHealthReporter(store: store, logger: Logger(label: "test")),
            ledger: store)
    }

    func createInput(_ user: String, apiKey: String?) -> Operations.ExternalProviderApiKeyCreate.Input {
        .init(body: .json(.init(user: user, openAI: .init(apiKey: apiKey))))
    }

    @Test("create returns typed metadata with the key masked")
    func create() async throws {
        let output = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-0123456789abcdefghWxyz"))
        let metadata = try output.ok.body.json.metadata
        #expect(metadata.openAI?.apiKey == "sk-...Wxyz")
        #expect(metadata.schema == .init(migration: 6, semantic: .major0Minor0Patch1))
    }

    @Test("a missing body is refused with 400")
    func missingBody() async throws {
        await #expect(throws: Problem.missingBody) { _ = try await handler.externalProviderApiKeyUpdate(.init(body: nil)) }
    }

    @Test("a second create is refused with 409; an unknown user's delete with 404")
    func stateRejections() async throws {
        _ = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-1"))
        await #expect(throws: Problem(.conflict, "User 'u' already has an OpenAI key: use /external_provider/api_key/update to change it.")) {
            _ = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-2"))
        }
        await #expect(throws: Problem(.notFound, "User 'nobody' is unknown: create a key for it first.")) {
            _ = try await handler.externalProviderApiKeyDelete(.init(body: .json(.init(user: "nobody", openAI: true))))
        }
    }

    @Test("an update without open_AI answers the metadata unchanged")
    func updateWithoutProvider() async throws {
        let created = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-1")).ok.body.json.metadata
        let updated = try await handler.externalProviderApiKeyUpdate(.init(body: .json(.init(user: "u")))).ok.body.json.metadata
        #expect(updated == created)
    }
}

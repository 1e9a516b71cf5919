import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Logging
import OpenAPIRuntime
import Testing

@testable import ExternalProviderServer

@Suite("Handlers, called without HTTP")
struct HandlerTests {
    let handler: ExternalProviderHandler

    init() throws {
        let store = try SQLiteKeyStore.inMemory()
        handler = ExternalProviderHandler(
            keys: KeyService(store: store, verifier: nil), models: NoOpenAI(), health: KeyHealthReporter(store: store, logger: Logger(label: "test")))
    }

    func createInput(_ user: String, apiKey: String?) -> Operations.ExternalProviderApiKeyCreate.Input {
        .init(body: .json(.init(user: user, openAI: .init(apiKey: apiKey))))
    }

    func text(_ body: HTTPBody) async throws -> String {
        try await String(collecting: body, upTo: 4096)
    }

    @Test("create returns typed metadata with the key masked")
    func create() async throws {
        let output = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-0123456789abcdefghWxyz"))
        let metadata = try output.ok.body.json.metadata
        #expect(metadata.openAI?.apiKey == "sk-...Wxyz")
        #expect(metadata.schema == .init(migration: 4, semantic: .major0Minor0Patch1))
    }

    @Test("a missing body is a typed 400")
    func missingBody() async throws {
        let output = try await handler.externalProviderApiKeyUpdate(.init(body: nil))
        guard case .badRequest(let response) = output else { Issue.record("expected 400, got \(output)"); return }
        #expect(try await text(response.body.textPlainCharsetUtf8) == "A JSON request body is required.")
    }

    @Test("a second create is a typed 409; an unknown user's delete a typed 404")
    func stateRejections() async throws {
        _ = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-1"))
        let again = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-2"))
        guard case .conflict = again else { Issue.record("expected 409, got \(again)"); return }
        let delete = try await handler.externalProviderApiKeyDelete(.init(body: .json(.init(user: "nobody", openAI: true))))
        guard case .notFound = delete else { Issue.record("expected 404, got \(delete)"); return }
    }

    @Test("an update without open_AI answers the metadata unchanged")
    func updateWithoutProvider() async throws {
        let created = try await handler.externalProviderApiKeyCreate(createInput("u", apiKey: "sk-1")).ok.body.json.metadata
        let updated = try await handler.externalProviderApiKeyUpdate(.init(body: .json(.init(user: "u")))).ok.body.json.metadata
        #expect(updated == created)
    }
}

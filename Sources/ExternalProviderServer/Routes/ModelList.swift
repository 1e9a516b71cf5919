import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// What asking a provider for a user's models came to.
enum ModelListing {
    case listed([ListedModel])
    case noKey
    case rejected(code: String)
    case unavailable(reason: String)
    case timedOut
}

extension APIHandler {
    /// The models `provider` lists for the user's stored key, which turns `valid` or `rejected` with the
    /// answer. An application bound to another user is refused (403).
    /// An application limited to some providers or models sees only those.
    func listing(_ provider: Provider, for user: UserID) async throws -> ModelListing {
        let application = RequestFacts.current?.application
        if application?.mayUseKey(of: user.rawValue) == false { throw Problem.boundToAnotherUser }
        if let application, let allowed = application.policy.providers, !allowed.contains(provider) {
            throw Problem.providerNotAllowed(application.name, provider, allowed: allowed)
        }
        guard let key = try await store.account(for: user)?.keys[provider] else { return .noKey }
        let credentials = ProviderCredentials(provider, key)
        let (outcome, listed) = await models.listModels(credentials)
        switch outcome {
        case .accepted:
            await health.accepted(credentials, of: user)
            guard let listed else { throw Problem(.badGateway, "\(provider.displayName)'s model list could not be read.") }
            return .listed(listed.filter { application?.policy.allows(model: $0.id) ?? true })
        case .rejected(let code):
            await health.rejected(credentials, of: user, code: code)
            return .rejected(code: code)
        case .unavailable(let reason):
            return .unavailable(reason: reason)
        case .rateLimited:
            return .unavailable(reason: "\(provider.displayName) is limiting requests (429)")
        case .timedOut:
            return .timedOut
        }
    }

    /// `POST /open_ai/models/list`, as `OpenAIApi.open_ai_models_list` of the PiecesOS SDKs calls it: the
    /// user's models, listed by OpenAI with the user's stored key, described as PiecesOS `SeededModel`s.
    /// The contract answers 401 both for no key and for a key OpenAI refuses; the sentence says which.
    func openAIModelsList(_ input: Operations.OpenAIModelsList.Input) async throws -> Operations.OpenAIModelsList.Output {
        guard case .json(let body)? = input.body else { throw Problem.missingBody }
        let user = try Self.user(body.user)
        switch try await listing(.openAI, for: user) {
        case .listed(let listed):
            return .ok(.init(body: .json(.init(schema: schema, models: .init(schema: schema, iterable: listed.map(seededModel))))))
        case .noKey:
            throw Problem(
                .unauthorized, "User '\(user)' has no OpenAI key, so there are no models to list: store one with /external_provider/api_key/create.")
        case .rejected(let code):
            throw Problem(.unauthorized, "OpenAI rejected the stored key of user '\(user)' (\(code)): replace it with /external_provider/api_key/update.")
        case .unavailable(let reason):
            throw Problem(.badGateway, "The models could not be listed: \(reason).")
        case .timedOut:
            throw Problem(
                .gatewayTimeout,
                "The models could not be listed: OpenAI did not answer within the verify timeout (\(ServeSettings.verifyTimeout.declaration.option)).")
        }
    }

    private func seededModel(_ model: ListedModel) -> Components.Schemas.SeededModel {
        let description = OpenAIModelCatalog.describe(model.id)
        return .init(
            schema: schema,
            version: description.version,
            created: .init(value: model.created ?? Date(timeIntervalSince1970: 0)),
            name: model.id,
            cloud: true,
            _type: {
                switch description.kind {
                case .speed: .speed
                case .balanced: .balanced
                case .accuracy: .accuracy
                case .unknown: .unknown
                }
            }(),
            usage: {
                switch description.usage {
                case .conversation: .codeConversation
                case .embedding: .textEmbedding
                case .unknown: .unknown
                }
            }(),
            foundation: description.foundation.map {
                switch $0 {
                case .gpt35: .gpt3_5
                case .gpt4: .gpt4
                case .gptLatest: .gptLatest
                }
            },
            unique: model.id,
            provider: .openai
        )
    }
}

import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// `POST /open_ai/models/list`, as `OpenAIApi.open_ai_models_list` of the PiecesOS SDKs calls it: the
/// user's models, listed by OpenAI with the user's stored key, described as PiecesOS `SeededModel`s.
extension ExternalProviderHandler {
    func openAIModelsList(_ input: Operations.OpenAIModelsList.Input) async throws -> Operations.OpenAIModelsList.Output {
        guard case .json(let body)? = input.body else { return .badRequest(.init(Problem.missingBody.message)) }
        let user: UserID
        do {
            user = try UserID(validating: body.user)
        } catch {
            return .badRequest(.init(error.message))
        }
        if CurrentRequest.application?.mayUseKey(of: user.rawValue) == false {
            return .forbidden(.init(Problem.boundToAnotherUser.message))
        }
        guard let key = try await store.account(for: user)?.keys[.openAI] else {
            return .unauthorized(.init("User '\(user)' has no OpenAI key, so there are no models to list: store one with /external_provider/api_key/create."))
        }
        let credentials = ProviderCredentials(.openAI, key)
        let (outcome, listing) = await models.listModels(credentials)
        switch outcome {
        case .accepted:
            await health.accepted(credentials, of: user)
            guard let listing, let models = try? JSONDecoder().decode(OpenAIModelList.self, from: listing) else {
                return .badGateway(.init("OpenAI's model list could not be read."))
            }
            let seeded = models.data.map(seededModel)
            return .ok(.init(body: .json(.init(schema: schema, models: .init(schema: schema, iterable: seeded)))))
        case .rejected(let code):
            await health.rejected(credentials, of: user, code: code)
            return .unauthorized(.init("OpenAI rejected the stored key of user '\(user)' (\(code)): replace it with /external_provider/api_key/update."))
        case .unavailable(let reason):
            return .badGateway(.init("The models could not be listed: \(reason)."))
        case .timedOut:
            return .gatewayTimeout(.init("The models could not be listed: OpenAI did not answer within the verify timeout (--verify-timeout)."))
        }
    }

    private func seededModel(_ model: OpenAIModelList.Model) -> Components.Schemas.SeededModel {
        let description = OpenAIModelCatalog.describe(model.id)
        return .init(
            schema: schema,
            version: description.version,
            created: .init(value: Date(timeIntervalSince1970: TimeInterval(model.created ?? 0))),
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

/// OpenAI's `GET /v1/models` answer: the fields used here.
struct OpenAIModelList: Decodable {
    struct Model: Decodable {
        let id: String
        let created: Int?
    }

    let data: [Model]
}

/// What the generated handlers, which see no request context, need to know of the request.
enum CurrentRequest {
    /// The application the request was authenticated as; `ApplicationAuthMiddleware` sets it.
    @TaskLocal static var application: ApplicationGrant?
    /// The request's id; `RequestLogMiddleware` sets it.
    @TaskLocal static var id: String?

    /// Where a change this request makes comes from, for the audit trail.
    static var origin: ChangeOrigin { ChangeOrigin(application: application?.name, requestID: id) }
}

extension Components.Responses.Forbidden {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

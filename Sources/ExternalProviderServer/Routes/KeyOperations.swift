import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// The operations of `openapi.yaml`: each parses its input into an operation of `KeyService` and answers
/// its result. Every other answer is a `Problem` thrown, which the one error path writes as the spec
/// documents it: one text/plain sentence with its status.
struct APIHandler: APIProtocol {
    /// The write use case, with the store and, unless verification is off, the provider's check.
    let keys: KeyService
    /// Lists a user's models with the provider.
    let models: any ModelLister
    /// Records what the provider said of a key the model list used.
    let health: KeyHealthReporter
    /// What the relay's applications spent.
    let ledger: any UsageLedger

    var store: any KeyStore { keys.store }

    func externalProviderApiKeyCreate(
        _ input: Operations.ExternalProviderApiKeyCreate.Input
    ) async throws -> Operations.ExternalProviderApiKeyCreate.Output {
        guard case .json(let body)? = input.body else { throw Problem.missingBody }
        let fields = body.openAI
        let account = try await perform(on: body.user) { () throws(InvalidInput) in
            .create(try NewKey(provider: .openAI, apiKey: fields?.apiKey, apiKeyName: fields?.apiKeyName, organizationKey: fields?.organizationKey))
        }
        return .ok(.init(body: .json(.init(schema: Self.schema, metadata: Self.metadata(account)))))
    }

    func externalProviderApiKeyUpdate(
        _ input: Operations.ExternalProviderApiKeyUpdate.Input
    ) async throws -> Operations.ExternalProviderApiKeyUpdate.Output {
        guard case .json(let body)? = input.body else { throw Problem.missingBody }
        let account = try await perform(on: body.user) { () throws(InvalidInput) in
            .update(try body.openAI.map { fields throws(InvalidInput) in
                try KeyPatch(provider: .openAI, apiKey: fields.apiKey, apiKeyName: fields.apiKeyName, organizationKey: fields.organizationKey)
            })
        }
        return .ok(.init(body: .json(.init(schema: Self.schema, metadata: Self.metadata(account)))))
    }

    func externalProviderApiKeyDelete(
        _ input: Operations.ExternalProviderApiKeyDelete.Input
    ) async throws -> Operations.ExternalProviderApiKeyDelete.Output {
        guard case .json(let body)? = input.body else { throw Problem.missingBody }
        let account = try await perform(on: body.user) { () throws(InvalidInput) in .delete(body.openAI == true ? [.openAI] : []) }
        return .ok(.init(body: .json(.init(schema: Self.schema, metadata: Self.metadata(account)))))
    }

    /// Validates the user and the operation, then runs it. A bad field is a 400; an application bound to
    /// a user is bound everywhere, so it may change that user's keys and no other's (403).
    func perform(on user: String, _ parse: () throws(InvalidInput) -> KeyOperation) async throws -> UserAccount {
        let user = try Self.user(user)
        let operation: KeyOperation
        do {
            operation = try parse()
        } catch {
            throw Problem.badRequest(error.message)
        }
        return try await perform(operation, for: user)
    }

    func perform(_ operation: KeyOperation, for user: UserID) async throws -> UserAccount {
        let facts = RequestFacts.current
        if facts?.application?.mayUseKey(of: user.rawValue) == false { throw Problem.boundToAnotherUser }
        do {
            return try await keys.perform(operation, for: user, origin: facts?.origin ?? .commandLine)
        } catch let rejection as KeyWriteRejection {
            throw Problem(rejection)
        }
    }

    /// The user a request names, validated: a malformed one is a 400 that names the field.
    static func user(_ text: String) throws(Problem) -> UserID {
        do {
            return try UserID(validating: text)
        } catch {
            throw Problem.badRequest(error.message)
        }
    }

    static var schema: Components.Schemas.EmbeddedModelSchema {
        .init(migration: DataVersion.current, semantic: .major0Minor0Patch1)
    }

    var schema: Components.Schemas.EmbeddedModelSchema { Self.schema }

    /// The user's metadata as the contract shows it: its OpenAI key, masked.
    static func metadata(_ account: UserAccount) -> Components.Schemas.Auth0UserMetadata {
        let openAI = account.keys[.openAI].map { key in
            Components.Schemas.Auth0OpenAIUserMetadata(
                schema: schema, apiKey: Provider.openAI.profile.mask.apply(to: key.apiKey), apiKeyName: key.apiKeyName,
                organizationKey: key.organizationKey)
        }
        return .init(schema: schema, globalId: account.globalID.uuidString.lowercased(), openAI: openAI)
    }
}

extension Problem {
    /// The answer to a refused write. The 401 sentence is the contract's, followed by the provider's
    /// error code, never its message.
    init(_ rejection: KeyWriteRejection) {
        switch rejection {
        case .conflict(let conflict):
            switch conflict {
            case .unknownUser, .noKey: self.init(.notFound, conflict.message)
            case .keyExists: self.init(.conflict, conflict.message)
            }
        case .changedDuringCheck:
            self.init(.conflict, "The key changed while it was being checked; send the request again.")
        case .keyRefused(_, let code):
            self.init(.unauthorized, "Invalid Authentication, Incorrect API key provided or organization: \(code)")
        case .providerUnavailable(let provider, let reason):
            self.init(.badGateway, "The key could not be checked with \(provider.displayName), so nothing was stored: \(reason).")
        case .providerTimedOut(let provider):
            self.init(
                .gatewayTimeout,
                "The key could not be checked with \(provider.displayName), so nothing was stored: no answer within the verify timeout (\(ServeSettings.verifyTimeout.declaration.option)).")
        }
    }
}

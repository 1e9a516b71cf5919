import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import OpenAPIRuntime

/// The three operations, on top of a store. Expected failures come back as the typed responses the spec
/// declares; only faults are thrown.
struct ExternalProviderHandler<Store: KeyStore>: APIProtocol {
    let store: Store

    func externalProviderApiKeyCreate(
        _ input: Operations.ExternalProviderApiKeyCreate.Input
    ) async throws -> Operations.ExternalProviderApiKeyCreate.Output {
        let outcome = try await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let user = try UserID(validating: body.user)
            let fields = body.openAI
            let new = try NewKey(provider: .openAI, apiKey: fields?.apiKey, apiKeyName: fields?.apiKeyName, organizationKey: fields?.organizationKey)
            return (user, .create(new))
        }
        switch outcome {
        case .success(let account): return .ok(.init(body: .json(.init(schema: schema, metadata: metadata(account)))))
        case .failure(.badRequest(let message)): return .badRequest(.init(message))
        case .failure(.notFound(let message)): return .notFound(.init(message))
        case .failure(.conflict(let message)): return .conflict(.init(message))
        }
    }

    func externalProviderApiKeyUpdate(
        _ input: Operations.ExternalProviderApiKeyUpdate.Input
    ) async throws -> Operations.ExternalProviderApiKeyUpdate.Output {
        let outcome = try await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let user = try UserID(validating: body.user)
            let patch = try body.openAI.map { fields throws(InvalidInput) in
                try KeyPatch(provider: .openAI, apiKey: fields.apiKey, apiKeyName: fields.apiKeyName, organizationKey: fields.organizationKey)
            }
            return (user, .update(patch))
        }
        switch outcome {
        case .success(let account): return .ok(.init(body: .json(.init(schema: schema, metadata: metadata(account)))))
        case .failure(.badRequest(let message)): return .badRequest(.init(message))
        case .failure(.notFound(let message)): return .notFound(.init(message))
        case .failure(.conflict(let message)): throw UnexpectedRejection(message: message)
        }
    }

    func externalProviderApiKeyDelete(
        _ input: Operations.ExternalProviderApiKeyDelete.Input
    ) async throws -> Operations.ExternalProviderApiKeyDelete.Output {
        let outcome = try await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let providers: Set<Provider> = body.openAI == true ? [.openAI] : []
            return (try UserID(validating: body.user), .delete(providers))
        }
        switch outcome {
        case .success(let account): return .ok(.init(body: .json(.init(schema: schema, metadata: metadata(account)))))
        case .failure(.badRequest(let message)): return .badRequest(.init(message))
        case .failure(.notFound(let message)): return .notFound(.init(message))
        case .failure(.conflict(let message)): throw UnexpectedRejection(message: message)
        }
    }

    /// Validates the request into an operation, runs it, and sorts expected failures from faults.
    private func perform(
        _ parse: () throws(InvalidInput) -> (UserID, KeyOperation)
    ) async throws -> Result<UserAccount, Rejection> {
        let user: UserID
        let operation: KeyOperation
        do {
            (user, operation) = try parse()
        } catch {
            return .failure(.badRequest(error.message))
        }
        do {
            return .success(try await store.perform(operation, for: user))
        } catch let conflict as StateConflict {
            return .failure(Rejection(conflict))
        }
    }

    private var schema: Components.Schemas.EmbeddedModelSchema {
        .init(migration: store.schemaVersion, semantic: .major0Minor0Patch1)
    }

    /// The user's metadata as the API shows it: every key masked.
    private func metadata(_ account: UserAccount) -> Components.Schemas.Auth0UserMetadata {
        let openAI = account.keys[.openAI].map { key in
            Components.Schemas.Auth0OpenAIUserMetadata(
                schema: schema,
                apiKey: APIKeyMask.mask(key.apiKey),
                apiKeyName: key.apiKeyName,
                organizationKey: key.organizationKey
            )
        }
        return .init(schema: schema, globalId: account.globalID.uuidString.lowercased(), openAI: openAI)
    }
}

/// An expected failure, answered with one of the typed responses the spec declares.
enum Rejection: Error, Equatable {
    case badRequest(String)
    case notFound(String)
    case conflict(String)

    init(_ conflict: StateConflict) {
        switch conflict {
        case .unknownUser, .noKey: self = .notFound(conflict.message)
        case .keyExists: self = .conflict(conflict.message)
        }
    }
}

/// A rejection an operation cannot produce by its rules: a bug, so a 500 with the detail in the log.
struct UnexpectedRejection: Error {
    let message: String
}

extension Components.Responses.BadRequest {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

extension Components.Responses.NotFound {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

extension Components.Responses.Conflict {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// The three operations and the model list: each maps a request to an operation of `KeyService` and
/// its result to the typed response the spec declares. Only faults are thrown.
struct ExternalProviderHandler: APIProtocol {
    /// The write use case, with the store and, unless verification is off, the provider's check.
    let keys: KeyService
    /// Lists a user's models with the provider, for the model list.
    let models: any ModelLister
    /// Records what the provider said of a key the model list used.
    let health: KeyHealthReporter

    var store: any KeyStore { keys.store }

    func externalProviderApiKeyCreate(
        _ input: Operations.ExternalProviderApiKeyCreate.Input
    ) async throws -> Operations.ExternalProviderApiKeyCreate.Output {
        try .init(await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let user = try UserID(validating: body.user)
            let fields = body.openAI
            let new = try NewKey(provider: .openAI, apiKey: fields?.apiKey, apiKeyName: fields?.apiKeyName, organizationKey: fields?.organizationKey)
            return (user, .create(new))
        })
    }

    func externalProviderApiKeyUpdate(
        _ input: Operations.ExternalProviderApiKeyUpdate.Input
    ) async throws -> Operations.ExternalProviderApiKeyUpdate.Output {
        try .init(await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let user = try UserID(validating: body.user)
            let patch = try body.openAI.map { fields throws(InvalidInput) in
                try KeyPatch(provider: .openAI, apiKey: fields.apiKey, apiKeyName: fields.apiKeyName, organizationKey: fields.organizationKey)
            }
            return (user, .update(patch))
        })
    }

    func externalProviderApiKeyDelete(
        _ input: Operations.ExternalProviderApiKeyDelete.Input
    ) async throws -> Operations.ExternalProviderApiKeyDelete.Output {
        try .init(await perform { () throws(InvalidInput) -> (UserID, KeyOperation) in
            guard case .json(let body)? = input.body else { throw InvalidInput(Problem.missingBody.message) }
            let providers: Set<Provider> = body.openAI == true ? [.openAI] : []
            return (try UserID(validating: body.user), .delete(providers))
        })
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
        // An application bound to a user is bound everywhere: it may change that user's keys and no other's.
        if CurrentRequest.application?.mayUseKey(of: user.rawValue) == false {
            return .failure(.forbidden(Problem.boundToAnotherUser.message))
        }
        do {
            return .success(try await keys.perform(operation, for: user, origin: CurrentRequest.origin))
        } catch let rejection as KeyWriteRejection {
            return .failure(Rejection(rejection))
        }
    }

    static var schema: Components.Schemas.EmbeddedModelSchema {
        .init(migration: DataVersion.current, semantic: .major0Minor0Patch1)
    }

    var schema: Components.Schemas.EmbeddedModelSchema { Self.schema }

    /// The user's metadata as the API shows it: every key masked.
    static func metadata(_ account: UserAccount) -> Components.Schemas.Auth0UserMetadata {
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

/// The outputs of create and update, which may answer any rejection: one mapping for both.
protocol KeyWriteOutput {
    static func ok(_ account: UserAccount) -> Self
    // Satisfied by the generated cases of the same names.
    static func badRequest(_ response: Components.Responses.BadRequest) -> Self
    static func notFound(_ response: Components.Responses.NotFound) -> Self
    static func conflict(_ response: Components.Responses.Conflict) -> Self
    static func unauthorized(_ response: Components.Responses.Unauthorized) -> Self
    static func forbidden(_ response: Components.Responses.Forbidden) -> Self
    static func badGateway(_ response: Components.Responses.BadGateway) -> Self
    static func gatewayTimeout(_ response: Components.Responses.GatewayTimeout) -> Self
}

extension KeyWriteOutput {
    init(_ outcome: Result<UserAccount, Rejection>) {
        switch outcome {
        case .success(let account): self = .ok(account)
        case .failure(.badRequest(let message)): self = .badRequest(.init(message))
        case .failure(.notFound(let message)): self = .notFound(.init(message))
        case .failure(.conflict(let message)): self = .conflict(.init(message))
        case .failure(.unauthorized(let message)): self = .unauthorized(.init(message))
        case .failure(.forbidden(let message)): self = .forbidden(.init(message))
        case .failure(.badGateway(let message)): self = .badGateway(.init(message))
        case .failure(.gatewayTimeout(let message)): self = .gatewayTimeout(.init(message))
        }
    }
}

extension Operations.ExternalProviderApiKeyCreate.Output: KeyWriteOutput {
    static func ok(_ account: UserAccount) -> Self {
        .ok(.init(body: .json(.init(schema: ExternalProviderHandler.schema, metadata: ExternalProviderHandler.metadata(account)))))
    }
}

extension Operations.ExternalProviderApiKeyUpdate.Output: KeyWriteOutput {
    static func ok(_ account: UserAccount) -> Self {
        .ok(.init(body: .json(.init(schema: ExternalProviderHandler.schema, metadata: ExternalProviderHandler.metadata(account)))))
    }
}

extension Operations.ExternalProviderApiKeyDelete.Output {
    /// A delete never checks a key, so the provider's refusals cannot reach it: one would be a bug.
    init(_ outcome: Result<UserAccount, Rejection>) throws {
        switch outcome {
        case .success(let account):
            self = .ok(.init(body: .json(.init(schema: ExternalProviderHandler.schema, metadata: ExternalProviderHandler.metadata(account)))))
        case .failure(.badRequest(let message)): self = .badRequest(.init(message))
        case .failure(.notFound(let message)): self = .notFound(.init(message))
        case .failure(.forbidden(let message)): self = .forbidden(.init(message))
        case .failure(.conflict(let message)), .failure(.unauthorized(let message)), .failure(.badGateway(let message)),
            .failure(.gatewayTimeout(let message)):
            throw UnexpectedRejection(message: message)
        }
    }
}

/// An expected failure, answered with one of the typed responses the spec declares.
enum Rejection: Error, Equatable {
    case badRequest(String)
    case notFound(String)
    case conflict(String)
    case unauthorized(String)
    case forbidden(String)
    case badGateway(String)
    case gatewayTimeout(String)

    /// The answer to a refused write. The 401 sentence is the contract's, followed by the provider's
    /// error code, never its message.
    init(_ rejection: KeyWriteRejection) {
        switch rejection {
        case .conflict(let conflict):
            switch conflict {
            case .unknownUser, .noKey: self = .notFound(conflict.message)
            case .keyExists: self = .conflict(conflict.message)
            }
        case .changedDuringCheck:
            self = .conflict("The key changed while it was being checked; send the request again.")
        case .keyRefused(_, let code):
            self = .unauthorized("Invalid Authentication, Incorrect API key provided or organization: \(code)")
        case .providerUnavailable(let provider, let reason):
            self = .badGateway("The key could not be checked with \(provider.displayName), so nothing was stored: \(reason).")
        case .providerTimedOut(let provider):
            self = .gatewayTimeout(
                "The key could not be checked with \(provider.displayName), so nothing was stored: no answer within the verify timeout (--verify-timeout).")
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

extension Components.Responses.Unauthorized {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

extension Components.Responses.BadGateway {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

extension Components.Responses.GatewayTimeout {
    init(_ message: String) { self.init(body: .textPlainCharsetUtf8(HTTPBody(message))) }
}

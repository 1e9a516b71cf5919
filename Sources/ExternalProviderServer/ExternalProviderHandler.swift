import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// The three operations, on top of a store. Expected failures come back as the typed responses the spec
/// declares; only faults are thrown.
struct ExternalProviderHandler<Store: KeyStore>: APIProtocol {
    /// How often a write whose key changed during its check is checked again before giving up.
    static var verificationAttempts: Int { 3 }

    let store: Store
    /// `nil` when verification is off: keys are stored without asking the provider.
    let verifier: (any KeyVerifier)?
    /// Lists a user's models with the provider, for the model list.
    let models: any ModelLister
    /// Records what the provider said of a key the model list used.
    let health: KeyHealthReporter

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
        case .failure(.unauthorized(let message)): return .unauthorized(.init(message))
        case .failure(.badGateway(let message)): return .badGateway(.init(message))
        case .failure(.gatewayTimeout(let message)): return .gatewayTimeout(.init(message))
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
        case .failure(.conflict(let message)): return .conflict(.init(message))
        case .failure(.unauthorized(let message)): return .unauthorized(.init(message))
        case .failure(.badGateway(let message)): return .badGateway(.init(message))
        case .failure(.gatewayTimeout(let message)): return .gatewayTimeout(.init(message))
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
        case .failure(.conflict(let message)), .failure(.unauthorized(let message)), .failure(.badGateway(let message)),
            .failure(.gatewayTimeout(let message)):
            throw UnexpectedRejection(message: message)
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
            guard let verifier else {
                return .success(try await store.perform(operation, for: user, verification: .off))
            }
            for _ in 0..<Self.verificationAttempts {
                let current = try await store.account(for: user)
                // A request the state already refuses (404/409) is answered without asking the provider.
                _ = try operation.apply(to: current, user: user)
                let credentials = operation.credentialsToVerify(on: current)
                if let credentials, let rejection = Rejection(await verifier.verify(credentials), for: credentials.provider) {
                    return .failure(rejection)
                }
                do {
                    return .success(try await store.perform(operation, for: user, verification: .accepted(credentials, at: Date())))
                } catch is VerificationOutdated {
                    continue
                }
            }
            return .failure(.conflict("The key changed while it was being checked; send the request again."))
        } catch let conflict as StateConflict {
            return .failure(Rejection(conflict))
        }
    }

    var schema: Components.Schemas.EmbeddedModelSchema {
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
    case unauthorized(String)
    case badGateway(String)
    case gatewayTimeout(String)

    init(_ conflict: StateConflict) {
        switch conflict {
        case .unknownUser, .noKey: self = .notFound(conflict.message)
        case .keyExists: self = .conflict(conflict.message)
        }
    }

    /// What the client hears when the provider did not accept the credentials; `nil` when it did.
    /// The 401 sentence is the contract's, followed by the provider's error code, never its message.
    init?(_ outcome: VerificationOutcome, for provider: Provider) {
        switch outcome {
        case .accepted:
            return nil
        case .rejected(let code):
            self = .unauthorized("Invalid Authentication, Incorrect API key provided or organization: \(code)")
        case .unavailable(let reason):
            self = .badGateway("The key could not be checked with \(provider.displayName), so nothing was stored: \(reason).")
        case .timedOut:
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

import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import Foundation
import OpenAPIRuntime

/// The keys API: every provider's key of a user, beside the contract (which knows OpenAI's only). It
/// runs the same operations through the same write use case, so an OpenAI key stored either way is the
/// one record both show.
extension APIHandler {
    func listUserKeys(_ input: Operations.ListUserKeys.Input) async throws -> Operations.ListUserKeys.Output {
        let user = try Self.user(input.path.user)
        try Self.mayUse(user)
        let keys = try await store.storedKeys(of: user).map(Self.storedKey)
        return .ok(.init(body: .json(.init(user: user.rawValue, keys: keys))))
    }

    func putUserKey(_ input: Operations.PutUserKey.Input) async throws -> Operations.PutUserKey.Output {
        let (user, provider) = try Self.target(input.path.user, input.path.provider)
        guard case .json(let body) = input.body else { throw Problem.missingBody }
        let new = try Self.parse {
            () throws(InvalidInput) in
            try NewKey(provider: provider, apiKey: body.apiKey, apiKeyName: body.name, organizationKey: body.organization, fields: .keysAPI)
        }
        let result = try await change(.put(new), of: provider, for: user)
        let stored = try await storedKey(of: provider, for: user)
        return result.before?.keys[provider] == nil ? .created(.init(body: .json(stored))) : .ok(.init(body: .json(stored)))
    }

    func patchUserKey(_ input: Operations.PatchUserKey.Input) async throws -> Operations.PatchUserKey.Output {
        let (user, provider) = try Self.target(input.path.user, input.path.provider)
        guard case .json(let body) = input.body else { throw Problem.missingBody }
        let changes = try Self.parse { () throws(InvalidInput) in try Self.changes(body.additionalProperties, provider: provider) }
        _ = try await change(.update(changes), of: provider, for: user)
        return .ok(.init(body: .json(try await storedKey(of: provider, for: user))))
    }

    func deleteUserKey(_ input: Operations.DeleteUserKey.Input) async throws -> Operations.DeleteUserKey.Output {
        let (user, provider) = try Self.target(input.path.user, input.path.provider)
        do {
            _ = try await change(.delete([provider]), of: provider, for: user)
        } catch let problem as Problem where problem.status == .notFound {
            // A user never seen has no key either: the delete is done.
        }
        return .noContent(.init())
    }

    func listUserKeyModels(_ input: Operations.ListUserKeyModels.Input) async throws -> Operations.ListUserKeyModels.Output {
        let (user, provider) = try Self.target(input.path.user, input.path.provider)
        let name = provider.displayName
        switch try await listing(provider, for: user) {
        case .listed(let models):
            let listed = models.map { Components.Schemas.ListedModel(id: $0.id, displayName: $0.displayName, created: $0.created) }
            return .ok(.init(body: .json(.init(provider: provider.name, models: listed))))
        case .noKey:
            throw Problem(.notFound, Self.noKey(user, provider))
        case .rejected(let code):
            throw Problem(.unauthorized, "\(name) refused the stored key of user '\(user)' (\(code)): replace it with PUT /v1/users/{user}/keys/\(provider.name).")
        case .unavailable(let reason):
            throw Problem(.badGateway, "The models could not be listed: \(reason).")
        case .timedOut:
            throw Problem(
                .gatewayTimeout,
                "The models could not be listed: \(name) did not answer within the verify timeout (\(ServeSettings.verifyTimeout.declaration.option)).")
        }
    }

    /// Runs `operation` on the user's `provider` key, with the keys API's sentence for a key that is not
    /// there.
    private func change(_ operation: KeyOperation, of provider: Provider, for user: UserID) async throws -> AccountChangeResult {
        try Self.mayUse(user)
        do {
            return try await keys.change(operation, for: user, origin: RequestFacts.current?.origin ?? .commandLine)
        } catch KeyWriteRejection.conflict(.unknownUser), KeyWriteRejection.conflict(.noKey) {
            throw Problem(.notFound, Self.noKey(user, provider))
        } catch let rejection as KeyWriteRejection {
            throw Problem(rejection)
        }
    }

    private func storedKey(of provider: Provider, for user: UserID) async throws -> Components.Schemas.StoredKey {
        guard let stored = try await store.storedKeys(of: user).first(where: { $0.provider == provider }) else {
            throw Fault(.bug, "the \(provider.name) key of a user was written and then not found")
        }
        return Self.storedKey(stored)
    }

    static func storedKey(_ key: StoredKeySummary) -> Components.Schemas.StoredKey {
        let code: String? = if case .rejected(_, let code) = key.health { code } else { nil }
        return .init(
            provider: key.provider.name, apiKey: key.maskedKey, name: key.name, organization: key.organization,
            health: .init(rawValue: key.health.name) ?? .unverified, checkedAt: key.health.checkedAt, healthCode: code, updatedAt: key.updatedAt)
    }

    /// The user and provider a path names, or the 400 that says which is malformed.
    static func target(_ user: String, _ provider: String) throws(Problem) -> (UserID, Provider) {
        let user = try Self.user(user)
        guard let known = Provider(name: provider) else {
            throw Problem.badRequest("Unknown provider '\(provider)': use one of \(Provider.names).")
        }
        return (user, known)
    }

    /// An application bound to a user may see and change that user's keys only (403).
    static func mayUse(_ user: UserID) throws(Problem) {
        if RequestFacts.current?.application?.mayUseKey(of: user.rawValue) == false { throw Problem.boundToAnotherUser }
    }

    static func parse<Value>(_ read: () throws(InvalidInput) -> Value) throws(Problem) -> Value {
        do {
            return try read()
        } catch {
            throw Problem.badRequest(error.message)
        }
    }

    static func noKey(_ user: UserID, _ provider: Provider) -> String {
        "User '\(user)' has no \(provider.displayName) key: store one with PUT /v1/users/{user}/keys/\(provider.name) first."
    }

    /// A PATCH body: `name` and `organization`, each a string that sets it or `null` that clears it;
    /// one left out is kept. Anything else is refused, so that a misspelt field cannot pass unnoticed.
    static func changes(_ body: OpenAPIObjectContainer, provider: Provider) throws(InvalidInput) -> KeyPatch {
        let fields = KeyFieldNames.keysAPI
        for field in body.value.keys where field != fields.name && field != fields.organization {
            throw InvalidInput("Field '\(field)' cannot be changed here: a PATCH takes '\(fields.name)' and '\(fields.organization)'; PUT the key to replace it.")
        }
        func edit(_ field: String) throws(InvalidInput) -> String? {
            guard let value = body.value[field] else { return nil }
            guard let value else { return "" }
            guard let text = value as? String else { throw InvalidInput("Field '\(field)' must be a string, or null to clear it.") }
            return text
        }
        return try KeyPatch(
            provider: provider, apiKey: nil, apiKeyName: edit(fields.name), organizationKey: edit(fields.organization), fields: fields)
    }
}

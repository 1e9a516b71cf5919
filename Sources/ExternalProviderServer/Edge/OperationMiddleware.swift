import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderStore
import HTTPTypes
import OpenAPIRuntime

/// What each generated operation is: its name in metrics and the scope its application needs, decided
/// from the operation the router matched (its generated id), never from the path a client spelled (the
/// router skips empty segments, so a check of the raw path, `//open_ai/models/list`, can be walked
/// around). It authenticates the request, then checks the scope; an operation missing here is refused,
/// so a new one cannot go unguarded.
struct OperationMiddleware: ServerMiddleware {
    struct Policy: Equatable {
        /// The `operation` label of the request metrics.
        let name: String
        let scope: ApplicationScope
        /// Whether it takes a JSON body, which `JSONBodyMiddleware` checks.
        var takesBody = true
    }

    static func policy(of operationID: String) -> Policy? {
        switch operationID {
        case Operations.ExternalProviderApiKeyCreate.id: Policy(name: "create", scope: .keys)
        case Operations.ExternalProviderApiKeyUpdate.id: Policy(name: "update", scope: .keys)
        case Operations.ExternalProviderApiKeyDelete.id: Policy(name: "delete", scope: .keys)
        case Operations.OpenAIModelsList.id: Policy(name: "models", scope: .relay)
        case Operations.ListUserKeys.id: Policy(name: "keys_list", scope: .keys, takesBody: false)
        case Operations.PutUserKey.id: Policy(name: "key_put", scope: .keys)
        case Operations.PatchUserKey.id: Policy(name: "key_patch", scope: .keys)
        case Operations.DeleteUserKey.id: Policy(name: "key_delete", scope: .keys, takesBody: false)
        case Operations.ListUserKeyModels.id: Policy(name: "key_models", scope: .keys, takesBody: false)
        case Operations.GetUsage.id: Policy(name: "usage", scope: .admin, takesBody: false)
        default: nil
        }
    }

    let authenticator: Authenticator

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let policy = Self.policy(of: operationID) else { throw Fault(.bug, "operation \(operationID) has no policy") }
        guard let facts = RequestFacts.current else { throw Fault(.bug, "operation \(operationID) ran outside a request's facts") }
        facts.operation = policy.name
        let grant = try await authenticator.authenticate(request.headerFields, facts: facts)
        guard grant.scopes.contains(policy.scope) else { throw Problem.missingScope(policy.scope) }
        return try await next(request, body, metadata)
    }
}

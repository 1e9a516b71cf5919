import Foundation

extension ProviderProfile {
    /// Anthropic: `x-api-key`, with `anthropic-version: 2023-06-01` unless the caller sends its own;
    /// `GET /v1/models` checks the key; 401 `authentication_error` and 403 `permission_error` refuse it
    /// (402 `billing_error` says the key is valid but has no credit).
    public static let anthropic = ProviderProfile(
        name: "anthropic", displayName: "Anthropic", defaultBaseURL: "https://api.anthropic.com", apiRootSuffix: "",
        credentialHeaders: { key in [HeaderField("x-api-key", key.apiKey)] },
        defaultHeaders: [HeaderField("anthropic-version", "2023-06-01")],
        // The largest page Anthropic gives (its default is 20).
        modelsPath: "/v1/models?limit=1000",
        readModels: { body in
            guard let data = ProviderJSON.object(body)?["data"] as? [[String: Any]] else { return nil }
            return data.compactMap { model in
                guard let id = model["id"] as? String else { return nil }
                return ListedModel(id: id, displayName: model["display_name"] as? String, created: ProviderJSON.date(model["created_at"]))
            }
        },
        refusalStatuses: [401, 403],
        refusalCode: { status, body in
            // {"type": "error", "error": {"type": "authentication_error", "message": …}}
            let error = ProviderJSON.object(body)?["error"] as? [String: Any]
            return ProviderJSON.code(error?["type"]) ?? (status == 401 ? "authentication_error" : "permission_error")
        },
        keyValidStatuses: [402], mask: .knownPrefix("sk-ant-"), takesOrganization: false,
        models: ModelRoutes(listings: ["v1/models"], modelFree: ["v1/files"], batches: ["v1/messages/batches"]))
}

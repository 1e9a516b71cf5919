import Foundation

extension ProviderProfile {
    /// Google's Gemini API (AI Studio): `x-goog-api-key`, never a `key=` query parameter, which ends up in
    /// access logs; `GET /v1beta/models` checks the key; 400 with the reason `API_KEY_INVALID`, and 403
    /// `PERMISSION_DENIED`, refuse it. Its `google-genai` SDK 3.x calls `/v1/...`, 1.x `/v1beta/...`: the
    /// relay passes both.
    public static let gemini = ProviderProfile(
        name: "gemini", displayName: "Gemini", defaultBaseURL: "https://generativelanguage.googleapis.com", apiRootSuffix: "",
        credentialHeaders: { key in [HeaderField("x-goog-api-key", key.apiKey)] },
        defaultHeaders: [],
        // The largest page Gemini gives (its default is 50).
        modelsPath: "/v1beta/models?pageSize=1000",
        readModels: { body in
            guard let models = ProviderJSON.object(body)?["models"] as? [[String: Any]] else { return nil }
            return models.compactMap { model in
                guard let name = model["name"] as? String else { return nil }
                let id = name.hasPrefix("models/") ? String(name.dropFirst("models/".count)) : name
                return ListedModel(id: id, displayName: model["displayName"] as? String, created: nil)
            }
        },
        refusalStatuses: [400, 403],
        refusalCode: { status, body in
            // {"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID", …}]}}
            let error = ProviderJSON.object(body)?["error"] as? [String: Any]
            let reasons = (error?["details"] as? [[String: Any]] ?? []).compactMap { ProviderJSON.code($0["reason"]) }
            if let reason = reasons.first(where: { $0.hasPrefix("API_KEY") }) { return reason }
            if status == 403 { return ProviderJSON.code(error?["status"]) ?? "PERMISSION_DENIED" }
            // Any other 400 is about the request, not the key.
            return nil
        },
        keyValidStatuses: [], mask: .knownPrefix("AIza"), takesOrganization: false,
        models: ModelRoutes(
            listings: ["v1beta/models", "v1/models", "v1alpha/models", "v1beta/tunedModels", "v1/tunedModels"],
            modelFree: ["v1beta/files", "v1/files", "v1alpha/files", "upload"],
            batches: ["v1beta/batches", "v1/batches", "v1alpha/batches"],
            asynchronous: ["v1beta/tunedModels", "v1/tunedModels"],
            credentials: ["v1alpha/auth_tokens", "v1beta/auth_tokens", "v1/auth_tokens"],
            inPath: true, batchMethods: ["batchGenerateContent", "asyncBatchEmbedContent"]))
}

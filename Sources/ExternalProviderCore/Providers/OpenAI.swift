import Foundation

extension ProviderProfile {
    /// OpenAI: `Authorization: Bearer`, with `OpenAI-Organization` when one is stored; `GET /v1/models`
    /// checks the pair; 401 and 403 refuse it, with `error.code` (or `error.type`) saying why.
    public static let openAI = ProviderProfile.speakingOpenAIsProtocol(
        name: "openai", displayName: "OpenAI", defaultBaseURL: "https://api.openai.com", apiRootSuffix: "/v1", mask: .firstThreeCharacters,
        takesOrganization: true, codeWhenUnsaid: "unknown", streamsUsageOnlyWhenAsked: true)
}

extension ProviderProfile {
    /// A provider that speaks OpenAI's protocol (`/chat/completions`, `GET /models`, `Authorization:
    /// Bearer`): a table entry. Its answers to a bad key are OpenAI's when it documents them, else read
    /// by the status alone: `codeWhenUnsaid`, or `unauthorized` (401) and `forbidden` (403).
    static func speakingOpenAIsProtocol(
        name: String, displayName: String, defaultBaseURL: String, apiRootSuffix: String = "", mask: KeyMask,
        takesOrganization: Bool = false, codeWhenUnsaid: String? = nil, streamsUsageOnlyWhenAsked: Bool = false
    ) -> ProviderProfile {
        ProviderProfile(
            name: name, displayName: displayName, defaultBaseURL: defaultBaseURL, apiRootSuffix: apiRootSuffix,
            credentialHeaders: { key in
                var headers = [HeaderField("Authorization", "Bearer \(key.apiKey)")]
                if takesOrganization, let organization = key.organizationKey { headers.append(HeaderField("OpenAI-Organization", organization)) }
                return headers
            },
            defaultHeaders: [], modelsPath: "/models", readModels: readOpenAIModels, refusalStatuses: [401, 403],
            refusalCode: { status, body in openAIErrorCode(body) ?? codeWhenUnsaid ?? (status == 401 ? "unauthorized" : "forbidden") },
            keyValidStatuses: [], mask: mask, takesOrganization: takesOrganization, models: .openAIProtocol(usageOnlyWhenAsked: streamsUsageOnlyWhenAsked))
    }

    /// `{"error": {"code": …, "type": …}}`: the code, or the type when the code is null.
    static func openAIErrorCode(_ body: Data?) -> String? {
        guard let error = ProviderJSON.object(body)?["error"] as? [String: Any] else { return nil }
        return ProviderJSON.code(error["code"]) ?? ProviderJSON.code(error["type"])
    }

    /// `{"object": "list", "data": [{"id", "created", "owned_by"}]}`.
    static func readOpenAIModels(_ body: Data) -> [ListedModel]? {
        guard let data = ProviderJSON.object(body)?["data"] as? [[String: Any]] else { return nil }
        return data.compactMap { model in
            guard let id = model["id"] as? String else { return nil }
            return ListedModel(id: id, displayName: nil, created: ProviderJSON.date(model["created"]))
        }
    }
}

import ExternalProviderCore
import Foundation
import Testing

@Suite("Providers as data: names, masks, the check's answers, the model lists")
struct ProviderProfileTests {
    @Test("the stored names are fixed: they are in every stored row and sealed value; the names people use are the API's")
    func names() {
        #expect(Provider.allCases.map(\.rawValue) == ["open_ai", "anthropic", "gemini", "mistral", "groq"])
        #expect(Provider.allCases.map(\.name) == ["openai", "anthropic", "gemini", "mistral", "groq"])
        #expect(Provider(name: "openai") == .openAI && Provider(name: "open_ai") == nil && Provider(name: "OpenAI") == nil)
        #expect(Provider.allCases.allSatisfy { Provider(name: $0.name) == $0 })
    }

    @Test("OpenAI's mask is as its dashboard shows keys; the others show their known start and the last four")
    func masks() {
        #expect(Provider.openAI.profile.mask.apply(to: "sk-proj-abcdefghijklmnopWxyz") == "sk-...Wxyz")
        #expect(Provider.openAI.profile.mask.apply(to: String(repeating: "a", count: 16) + "Wxyz") == "aaa...Wxyz")
        #expect(Provider.anthropic.profile.mask.apply(to: "sk-ant-api03-abcdefghijklmnopWxyz") == "sk-ant-...Wxyz")
        #expect(Provider.gemini.profile.mask.apply(to: "AIzaSyAbcdefghijklmnopqrstuvWxyz") == "AIza...Wxyz")
        #expect(Provider.groq.profile.mask.apply(to: "gsk_abcdefghijklmnopqrstuvWxyz") == "gsk_...Wxyz")
        // Mistral's keys have no known start: only the last four show.
        #expect(Provider.mistral.profile.mask.apply(to: "abcdefghijklmnopqrstuvwxyz01Wxyz") == "...Wxyz")
        // A key without the provider's start does not get it made up.
        #expect(Provider.anthropic.profile.mask.apply(to: "not-an-anthropic-key-0123Wxyz") == "...Wxyz")
        for provider in Provider.allCases {
            for short in ["", "a", "sk-short-Wxyz", String(repeating: "x", count: 19)] {
                #expect(provider.profile.mask.apply(to: short) == "****")
            }
        }
    }

    @Test("each provider's refusal, as its documentation shows it, refuses the key with its code")
    func refusals() {
        func body(_ json: String) -> Data { Data(json.utf8) }
        #expect(
            Provider.openAI.profile.outcome(
                status: 401, body: body(#"{"error":{"message":"Incorrect API key provided: sk-...abcd.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#))
                == .rejected(code: "invalid_api_key"))
        #expect(
            Provider.anthropic.profile.outcome(
                status: 401, body: body(#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#))
                == .rejected(code: "authentication_error"))
        #expect(
            Provider.anthropic.profile.outcome(status: 403, body: body(#"{"type":"error","error":{"type":"permission_error","message":"no"}}"#))
                == .rejected(code: "permission_error"))
        // No credit: the key itself is valid.
        #expect(Provider.anthropic.profile.outcome(status: 402, body: body(#"{"type":"error","error":{"type":"billing_error"}}"#)) == .accepted)
        let invalidGemini = #"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#
        #expect(Provider.gemini.profile.outcome(status: 400, body: body(invalidGemini)) == .rejected(code: "API_KEY_INVALID"))
        #expect(
            Provider.gemini.profile.outcome(status: 403, body: body(#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#))
                == .rejected(code: "PERMISSION_DENIED"))
        // Gemini's other 400s are about the request, not the key.
        #expect(
            Provider.gemini.profile.outcome(status: 400, body: body(#"{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"bad"}}"#))
                == .unavailable(reason: "Gemini answered an unexpected 400"))
        // Mistral's body is not documented: the status says it.
        #expect(Provider.mistral.profile.outcome(status: 401, body: body(#"{"detail":"Unauthorized"}"#)) == .rejected(code: "unauthorized"))
        #expect(
            Provider.groq.profile.outcome(status: 401, body: body(#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#))
                == .rejected(code: "invalid_api_key"))
    }

    @Test("a code is repeated only if it looks like one: never a message, which may quote the masked key")
    func codesOnly() {
        let quoting = Data(#"{"error":{"code":"Incorrect API key provided: sk-...abcd","type":"invalid request"}}"#.utf8)
        #expect(Provider.openAI.profile.outcome(status: 401, body: quoting) == .rejected(code: "unknown"))
        #expect(Provider.groq.profile.outcome(status: 401, body: quoting) == .rejected(code: "unauthorized"))
        let nullCode = Data(#"{"error":{"message":"m","type":"insufficient_quota","code":null}}"#.utf8)
        #expect(Provider.openAI.profile.outcome(status: 403, body: nullCode) == .rejected(code: "insufficient_quota"))
        #expect(Provider.openAI.profile.outcome(status: 403, body: Data("<html>".utf8)) == .rejected(code: "unknown"))
    }

    @Test("every provider answers the same way to success, redirects, 429 and server errors")
    func commonAnswers() {
        for provider in Provider.allCases {
            let profile = provider.profile
            #expect(profile.outcome(status: 200, body: nil) == .accepted)
            #expect(profile.outcome(status: 429, body: nil) == .rateLimited)
            #expect(profile.outcome(status: 503, body: nil) == .unavailable(reason: "\(profile.displayName) answered 503"))
            guard case .unavailable(let reason) = profile.outcome(status: 302, body: nil) else { Issue.record("302 is not unavailable"); continue }
            #expect(reason.contains("redirect (302)"))
        }
    }

    @Test("each provider's model list reads as its documentation shows it")
    func modelLists() throws {
        let openAI = try #require(Provider.openAI.profile.readModels(Data(#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"}]}"#.utf8)))
        #expect(openAI == [ListedModel(id: "gpt-4o", displayName: nil, created: Date(timeIntervalSince1970: 1_715_367_049))])
        let anthropic = try #require(Provider.anthropic.profile.readModels(Data(#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}"#.utf8)))
        #expect(anthropic == [ListedModel(id: "claude-sonnet-4-5", displayName: "Claude Sonnet 4.5", created: Date(timeIntervalSince1970: 1_759_104_000))])
        let gemini = try #require(Provider.gemini.profile.readModels(Data(#"{"models":[{"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash","supportedGenerationMethods":["generateContent"]}]}"#.utf8)))
        #expect(gemini == [ListedModel(id: "gemini-2.5-flash", displayName: "Gemini 2.5 Flash", created: nil)])
        #expect(Provider.mistral.profile.readModels(Data(#"{"detail":"nope"}"#.utf8)) == nil)
    }

    @Test("each key goes in its provider's own header; only OpenAI takes an organization")
    func credentialHeaders() {
        let key = ProviderKey(apiKey: "secret-key", organizationKey: "org-1")
        func headers(_ provider: Provider) -> [String] { provider.profile.credentialHeaders(key).map { "\($0.name): \($0.value)" } }
        #expect(headers(.openAI) == ["Authorization: Bearer secret-key", "OpenAI-Organization: org-1"])
        #expect(headers(.anthropic) == ["x-api-key: secret-key"])
        #expect(headers(.gemini) == ["x-goog-api-key: secret-key"])
        #expect(headers(.mistral) == ["Authorization: Bearer secret-key"])
        #expect(headers(.groq) == ["Authorization: Bearer secret-key"])
        #expect(Provider.allCases.filter(\.profile.takesOrganization) == [.openAI])
        #expect(Provider.anthropic.profile.defaultHeaders == [HeaderField("anthropic-version", "2023-06-01")])
    }
}

import ExternalProviderCore
import Foundation
import Testing

@Suite("The keys API's put: store or replace, the same key again a no-op, organizations OpenAI's only")
struct PutOperationTests {
    let user = UserID(trusted: "user-put")

    func put(_ provider: Provider, _ apiKey: String, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .put(try NewKey(provider: provider, apiKey: apiKey, apiKeyName: name, organizationKey: organization, fields: .keysAPI))
    }

    @Test("a put makes the account, or replaces the key whole: a name left out is none")
    func replacesWhole() throws {
        let first = try put(.anthropic, "sk-ant-first", name: "work").apply(to: nil, user: user)
        #expect(first.keys == [.anthropic: ProviderKey(apiKey: "sk-ant-first", apiKeyName: "work")])
        let replaced = try put(.anthropic, "sk-ant-second").apply(to: first, user: user)
        #expect(replaced.keys[.anthropic] == ProviderKey(apiKey: "sk-ant-second") && replaced.globalID == first.globalID)
        // Other providers' keys stay as they are.
        let both = try put(.gemini, "AIza-gemini").apply(to: replaced, user: user)
        #expect(both.keys.count == 2 && both.keys[.anthropic] == replaced.keys[.anthropic])
    }

    @Test("the check is needed only for a new (key, organization) pair")
    func checks() throws {
        let account = try put(.openAI, "sk-same", organization: "org-1").apply(to: nil, user: user)
        #expect(try put(.openAI, "sk-same", organization: "org-1").credentialsToVerify(on: account) == nil)
        #expect(try put(.openAI, "sk-same", name: "renamed", organization: "org-1").credentialsToVerify(on: account) == nil)
        #expect(
            try put(.openAI, "sk-same", organization: "org-2").credentialsToVerify(on: account)
                == ProviderCredentials(provider: .openAI, apiKey: "sk-same", organization: "org-2"))
        #expect(try put(.groq, "gsk_new").credentialsToVerify(on: account) == ProviderCredentials(provider: .groq, apiKey: "gsk_new", organization: nil))
    }

    @Test("the audit calls a put of a new key a create, of a key the account has an update")
    func auditAction() throws {
        let account = try put(.mistral, "m-1").apply(to: nil, user: user)
        #expect(try put(.mistral, "m-2").auditAction(on: account) == .update)
        #expect(try put(.groq, "g-1").auditAction(on: account) == .create)
        #expect(try put(.groq, "g-1").auditAction(on: nil) == .create)
    }

    @Test("only OpenAI keys take an organization; fields are named as the API names them")
    func organizations() {
        #expect(throws: InvalidInput("Field 'organization' is OpenAI's only: Anthropic keys have no organization.")) {
            try put(.anthropic, "sk-ant", organization: "org-1")
        }
        #expect(throws: Never.self) { try put(.anthropic, "sk-ant", organization: "") }
        #expect(throws: InvalidInput("Field 'api_key' is required and must not be empty.")) { try put(.gemini, "") }
        #expect(throws: InvalidInput("Field 'name' must not contain control characters.")) { try put(.gemini, "AIza", name: "a\u{7}") }
    }

    @Test("an account change's audit entry names the providers whose key changed, stored by their stored names")
    func auditedProviders() throws {
        let before = try put(.openAI, "sk-1").apply(to: nil, user: user)
        var after = try put(.gemini, "AIza-1").apply(to: before, user: user)
        after = try KeyOperation.delete([.openAI]).apply(to: after, user: user)
        let entry = AuditEntry.accountChange(.update, from: before, to: after, origin: .commandLine, verification: nil, at: Date())
        #expect(entry.providers == [.openAI, .gemini])
        #expect(AuditEntry.stored(entry.providers) == "open_ai,gemini")
        #expect(AuditEntry.providers(stored: "open_ai,gemini,cohere") == [.openAI, .gemini])
        #expect(AuditEntry.providers(stored: nil).isEmpty)
    }
}

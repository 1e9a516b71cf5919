import ExternalProviderCore
import Testing

@Suite("Field rules")
struct FieldRulesTests {
    @Test("user must be present, non-empty, at most 256 bytes and free of control characters")
    func user() throws {
        #expect(throws: InvalidInput("Field 'user' must not be empty.")) { try UserID(validating: "") }
        #expect(throws: InvalidInput("Field 'user' must be at most 256 bytes.")) {
            try UserID(validating: String(repeating: "é", count: 129))
        }
        #expect(throws: InvalidInput("Field 'user' must not contain control characters.")) { try UserID(validating: "a\u{7}b") }
        #expect(throws: InvalidInput("Field 'user' must not contain control characters.")) { try UserID(validating: "a\u{85}b") }
        #expect(try UserID(validating: String(repeating: "u", count: 256)).rawValue.count == 256)
        #expect(try UserID(validating: "auth0|user with spaces").rawValue == "auth0|user with spaces")
    }

    @Test("other fields are limited to 1024 bytes")
    func fieldLength() throws {
        let limit = String(repeating: "k", count: 1024)
        #expect(throws: Never.self) { try FieldRules.apiKeyName.named(KeyFieldNames.contract.name).check(limit) }
        #expect(throws: InvalidInput("Field 'open_AI.api_key_name' must be at most 1024 bytes.")) {
            try FieldRules.apiKeyName.named(KeyFieldNames.contract.name).check(limit + "k")
        }
        #expect(throws: InvalidInput("Field 'open_AI.organization_key' must be at most 1024 bytes.")) {
            try FieldRules.organizationKey.named(KeyFieldNames.contract.organization).check(limit + "k")
        }
    }

    @Test("keys and organizations reject whitespace; names allow it")
    func whitespace() {
        #expect(throws: InvalidInput("Field 'open_AI.api_key' must not contain spaces.")) { try FieldRules.apiKey.named(KeyFieldNames.contract.apiKey).check("sk-abc def") }
        #expect(throws: InvalidInput("Field 'open_AI.api_key' must not contain control characters.")) { try FieldRules.apiKey.named(KeyFieldNames.contract.apiKey).check("sk-abc\n") }
        #expect(throws: InvalidInput("Field 'open_AI.organization_key' must not contain spaces.")) { try FieldRules.organizationKey.named(KeyFieldNames.contract.organization).check("org 1") }
        #expect(throws: Never.self) { try FieldRules.apiKeyName.named(KeyFieldNames.contract.name).check("my work key") }
    }

    @Test("no message quotes the value it rejects")
    func messagesNeverQuoteValues() {
        let secret = "sk-secret value-that-must-not-leak"
        do {
            try FieldRules.apiKey.named(KeyFieldNames.contract.apiKey).check(secret)
            Issue.record("expected a rejection")
        } catch {
            #expect(!error.message.contains("secret"))
        }
    }
}

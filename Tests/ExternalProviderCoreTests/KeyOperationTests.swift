import ExternalProviderCore
import Foundation
import Testing

@Suite("The three operations as state changes")
struct KeyOperationTests {
    let user = UserID(trusted: "user-1")
    let fixedID = UUID(uuidString: "00000000-0000-4000-8000-000000000001")!

    func create(_ apiKey: String? = "sk-first", name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .create(try NewKey(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    func update(_ apiKey: String? = nil, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    @Test("the first create makes the account with a new global id")
    func firstCreate() throws {
        let account = try create(name: "work", organization: "org-1").apply(to: nil, user: user) { fixedID }
        #expect(account.globalID == fixedID)
        #expect(account.keys[.openAI] == ProviderKey(apiKey: "sk-first", apiKeyName: "work", organizationKey: "org-1"))
    }

    @Test("create needs a non-empty api_key", arguments: [nil, ""])
    func createNeedsKey(apiKey: String?) {
        #expect(throws: InvalidInput("Field 'open_AI.api_key' is required and must not be empty.")) { try create(apiKey) }
    }

    @Test("create treats empty optional fields as absent")
    func createEmptyOptionals() throws {
        let account = try create(name: "", organization: "").apply(to: nil, user: user)
        #expect(account.keys[.openAI] == ProviderKey(apiKey: "sk-first"))
    }

    @Test("a second create conflicts and leaves the account as it was")
    func createConflict() throws {
        let account = try create().apply(to: nil, user: user)
        #expect(throws: StateConflict.keyExists(user, .openAI)) { try create("sk-second").apply(to: account, user: user) }
    }

    @Test("a create after delete keeps the global id")
    func createAfterDelete() throws {
        let first = try create().apply(to: nil, user: user) { fixedID }
        let emptied = try KeyOperation.delete([.openAI]).apply(to: first, user: user)
        let again = try create("sk-again").apply(to: emptied, user: user) { UUID() }
        #expect(again.globalID == fixedID)
        #expect(again.keys[.openAI]?.apiKey == "sk-again")
    }

    @Test("update merges: present fields replace, absent stay, empty strings clear names and organizations")
    func updateMerges() throws {
        let start = try create(name: "work", organization: "org-1").apply(to: nil, user: user)
        let renamed = try update(name: "home").apply(to: start, user: user)
        #expect(renamed.keys[.openAI] == ProviderKey(apiKey: "sk-first", apiKeyName: "home", organizationKey: "org-1"))
        let cleared = try update(name: "", organization: "").apply(to: renamed, user: user)
        #expect(cleared.keys[.openAI] == ProviderKey(apiKey: "sk-first"))
        let rekeyed = try update("sk-second").apply(to: renamed, user: user)
        #expect(rekeyed.keys[.openAI] == ProviderKey(apiKey: "sk-second", apiKeyName: "home", organizationKey: "org-1"))
    }

    @Test("an empty api_key on update keeps the stored key")
    func updateEmptyKeyKeeps() throws {
        let start = try create().apply(to: nil, user: user)
        #expect(try update("").apply(to: start, user: user) == start)
    }

    @Test("update: unknown user and missing key are not found; no provider object changes nothing")
    func updateStates() throws {
        #expect(throws: StateConflict.unknownUser(user)) { try update(name: "x").apply(to: nil, user: user) }
        let emptied = try KeyOperation.delete([.openAI]).apply(to: try create().apply(to: nil, user: user), user: user)
        #expect(throws: StateConflict.noKey(user, .openAI)) { try update(name: "x").apply(to: emptied, user: user) }
        #expect(try KeyOperation.update(nil).apply(to: emptied, user: user) == emptied)
        #expect(throws: StateConflict.unknownUser(user)) { try KeyOperation.update(nil).apply(to: nil, user: user) }
    }

    @Test("delete removes only the named providers and is idempotent; an unknown user is not found")
    func delete() throws {
        let start = try create().apply(to: nil, user: user)
        #expect(try KeyOperation.delete([]).apply(to: start, user: user) == start)
        let deleted = try KeyOperation.delete([.openAI]).apply(to: start, user: user)
        #expect(deleted.keys.isEmpty)
        #expect(deleted.globalID == start.globalID)
        #expect(try KeyOperation.delete([.openAI]).apply(to: deleted, user: user) == deleted)
        #expect(throws: StateConflict.unknownUser(user)) { try KeyOperation.delete([.openAI]).apply(to: nil, user: user) }
    }

    @Test("conflict messages point to the operation to use and never carry a key")
    func messages() {
        #expect(StateConflict.keyExists(user, .openAI).message.contains("/external_provider/api_key/update"))
        #expect(StateConflict.noKey(user, .openAI).message.contains("/external_provider/api_key/create"))
    }
}

@Suite("Which credentials an operation needs checked")
struct VerificationRuleTests {
    let user = UserID(trusted: "u")

    func account(key: String = "sk-old", organization: String? = "org-old") throws -> UserAccount {
        try KeyOperation.create(NewKey(provider: .openAI, apiKey: key, apiKeyName: "n", organizationKey: organization)).apply(to: nil, user: user)
    }

    func patch(_ apiKey: String? = nil, name: String? = nil, organization: String? = nil) throws -> KeyOperation {
        .update(try KeyPatch(provider: .openAI, apiKey: apiKey, apiKeyName: name, organizationKey: organization))
    }

    @Test("a create checks its key with its organization")
    func create() throws {
        let operation = KeyOperation.create(try NewKey(provider: .openAI, apiKey: "sk-new", apiKeyName: nil, organizationKey: "org-1"))
        #expect(operation.credentialsToVerify(on: nil) == ProviderCredentials(provider: .openAI, apiKey: "sk-new", organization: "org-1"))
    }

    @Test("a new key is checked with the stored organization; a new organization with the stored key")
    func changes() throws {
        let stored = try account()
        #expect(try patch("sk-new").credentialsToVerify(on: stored) == ProviderCredentials(provider: .openAI, apiKey: "sk-new", organization: "org-old"))
        #expect(try patch(organization: "org-new").credentialsToVerify(on: stored) == ProviderCredentials(provider: .openAI, apiKey: "sk-old", organization: "org-new"))
    }

    @Test("clearing the organization checks the key with none")
    func clearOrganization() throws {
        #expect(try patch(organization: "").credentialsToVerify(on: try account()) == ProviderCredentials(provider: .openAI, apiKey: "sk-old", organization: nil))
    }

    @Test("names, no-ops, deletes and rewriting the same pair check nothing")
    func nothingToCheck() throws {
        let stored = try account()
        #expect(try patch(name: "renamed").credentialsToVerify(on: stored) == nil)
        #expect(try patch("", organization: nil).credentialsToVerify(on: stored) == nil)
        #expect(try patch("sk-old", organization: "org-old").credentialsToVerify(on: stored) == nil)
        #expect(KeyOperation.update(nil).credentialsToVerify(on: stored) == nil)
        #expect(KeyOperation.delete([.openAI]).credentialsToVerify(on: stored) == nil)
        #expect(try patch("sk-new").credentialsToVerify(on: nil) == nil)
    }
}

@Suite("Values compare by their bytes, not by canonical equivalence")
struct ByteComparisonTests {
    let decomposed = "Cafe\u{301}"
    let precomposed = "Caf\u{E9}"

    @Test("keys, credentials, edits and users that differ only in normal form are different")
    func differentBytesDiffer() {
        #expect(decomposed == precomposed)
        #expect(ProviderKey(apiKey: "k", apiKeyName: decomposed) != ProviderKey(apiKey: "k", apiKeyName: precomposed))
        #expect(ProviderKey(apiKey: decomposed) != ProviderKey(apiKey: precomposed))
        #expect(!ProviderKey(apiKey: "k", organizationKey: decomposed).hasSameCredentials(as: ProviderKey(apiKey: "k", organizationKey: precomposed)))
        #expect(ProviderCredentials(provider: .openAI, apiKey: decomposed, organization: nil) != ProviderCredentials(provider: .openAI, apiKey: precomposed, organization: nil))
        #expect(FieldEdit(decomposed) != FieldEdit(precomposed))
        #expect(UserID(trusted: decomposed) != UserID(trusted: precomposed))
        #expect(Set([UserID(trusted: decomposed), UserID(trusted: precomposed)]).count == 2)
        #expect(Set([ExactText("K"), ExactText("\u{212A}")]).count == 2)
    }

    @Test("an update to the other normal form needs the new credentials checked")
    func updateNeedsVerification() throws {
        let account = UserAccount(user: UserID(trusted: "u"), globalID: UUID(), keys: [.openAI: ProviderKey(apiKey: "sk-\(decomposed)")])
        let patch = try KeyPatch(provider: .openAI, apiKey: "sk-\(precomposed)", apiKeyName: nil, organizationKey: nil)
        #expect(KeyOperation.update(patch).credentialsToVerify(on: account)?.apiKey == "sk-\(precomposed)")
    }
}

@Suite("OpenAI model ids described for PiecesOS")
struct OpenAIModelCatalogTests {
    @Test("chat, embedding and other models", arguments: [
        ("gpt-4o", ModelDescription(foundation: .gpt4, usage: .conversation, kind: .balanced, version: "latest")),
        ("gpt-4o-mini-2024-07-18", ModelDescription(foundation: .gpt4, usage: .conversation, kind: .speed, version: "2024-07-18")),
        ("gpt-3.5-turbo-0125", ModelDescription(foundation: .gpt35, usage: .conversation, kind: .speed, version: "0125")),
        ("gpt-5", ModelDescription(foundation: .gptLatest, usage: .conversation, kind: .balanced, version: "latest")),
        ("o3", ModelDescription(foundation: nil, usage: .conversation, kind: .accuracy, version: "latest")),
        ("text-embedding-3-small", ModelDescription(foundation: nil, usage: .embedding, kind: .unknown, version: "latest")),
        ("whisper-1", ModelDescription(foundation: nil, usage: .unknown, kind: .unknown, version: "latest")),
        ("gpt-4o-transcribe", ModelDescription(foundation: .gpt4, usage: .unknown, kind: .unknown, version: "latest")),
    ])
    func describe(id: String, expected: ModelDescription) {
        #expect(OpenAIModelCatalog.describe(id) == expected)
    }
}

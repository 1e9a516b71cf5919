import ExternalProviderCore
import Foundation
import Testing

@testable import ExternalProviderStore

@Suite("An account change as rows, the rule both stores write by")
struct AccountRowChangesTests {
    let user = UserID(trusted: "rows")
    let id = UUID(uuidString: "00000000-0000-4000-8000-000000000009")!

    func account(_ keys: [Provider: ProviderKey]) -> UserAccount { UserAccount(user: user, globalID: id, keys: keys) }

    @Test("only what differs is written; a new pair is told from a new name")
    func rows() {
        let old = account([.openAI: ProviderKey(apiKey: "sk-1", organizationKey: "org"), .gemini: ProviderKey(apiKey: "AIza-1")])
        let new = account([
            .openAI: ProviderKey(apiKey: "sk-1", apiKeyName: "renamed", organizationKey: "org"), .anthropic: ProviderKey(apiKey: "sk-ant-1"),
        ])
        let changes = AccountRowChanges(from: old, to: new)
        #expect(!changes.createsAccount)
        #expect(changes.keyRows == [
            .update(.openAI, ProviderKey(apiKey: "sk-1", apiKeyName: "renamed", organizationKey: "org"), newCredentials: false),
            .insert(.anthropic, ProviderKey(apiKey: "sk-ant-1")), .delete(.gemini),
        ])
        let rekeyed = AccountRowChanges(from: old, to: account([.openAI: ProviderKey(apiKey: "sk-1", organizationKey: "org-2"), .gemini: ProviderKey(apiKey: "AIza-1")]))
        #expect(rekeyed.keyRows == [.update(.openAI, ProviderKey(apiKey: "sk-1", organizationKey: "org-2"), newCredentials: true)])
        #expect(AccountRowChanges(from: old, to: old).isEmpty)
        #expect(AccountRowChanges(from: nil, to: account([:])) == AccountRowChanges(from: nil, to: account([:])))
        #expect(AccountRowChanges(from: nil, to: account([:])).createsAccount)
    }
}

import ExternalProviderCore
import ExternalProviderTestSupport
import Foundation
import Testing

@testable import ExternalProviderStore

/// Applications as virtual keys and the usage ledger, as every store keeps them.
@Suite("Every store keeps policies and the usage ledger alike")
struct VirtualKeyStoreTests {
    static func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    static let policy = ApplicationPolicy(
        models: [try! ModelGlob("gpt-4o*"), try! ModelGlob("claude-*")], providers: [.openAI, .anthropic],
        expiresAt: date("2027-01-01T00:00:00Z"), requestsPerMinute: 60, tokensPerDay: 100_000, tokensPerMonth: 2_000_000)

    @Test("a policy's stored form is written out: globs by newline, providers by stored name in table order")
    func storedForm() {
        let columns = PolicyColumns(Self.policy)
        #expect(columns.models == "gpt-4o*\nclaude-*")
        #expect(columns.providers == "open_ai,anthropic")
        #expect(columns.policy == Self.policy)
        // What a newer version may write and this one does not know is left out, never misread.
        let newer = PolicyColumns(models: "gpt-4o*", providers: "open_ai,deepseek", expiresAt: nil, requestsPerMinute: nil, tokensPerDay: nil, tokensPerMonth: nil)
        #expect(newer.policy.providers == [.openAI])
        #expect(PolicyColumns(.unlimited) == PolicyColumns(models: nil, providers: nil, expiresAt: nil, requestsPerMinute: nil, tokensPerDay: nil, tokensPerMonth: nil))
    }

    @Test("an application's policy is kept, read back with its grant, changed by update, and audited by field", arguments: StoreKind.available)
    func policies(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let id = try await store.registerApplication(named: "agent", scopes: [.relay], boundUser: nil, policy: Self.policy)
                #expect(try await store.activeApplication(id: id)?.policy == Self.policy)
                #expect(try await store.applications().first?.policy == Self.policy)
                let updated = try await store.updateApplication(named: "agent") { policy in
                    var policy = policy
                    policy.requestsPerMinute = nil
                    policy.models = [try! ModelGlob("o3")]
                    return policy
                }
                let o3 = try ModelGlob("o3")
                #expect(updated?.requestsPerMinute == nil && updated?.models == [o3])
                #expect(try await store.activeApplication(id: id)?.policy == updated)
                // The same policy again changes nothing and is not audited.
                _ = try await store.updateApplication(named: "agent") { $0 }
                #expect(try await store.updateApplication(named: "nobody") { $0 } == nil)
                _ = try await store.revokeApplication(named: "agent")
                #expect(try await store.updateApplication(named: "agent") { _ in .unlimited } == nil)
                let trail = try await store.auditTrail(AuditQuery())
                #expect(trail.map(\.action) == [.appsCreate, .appsUpdate, .appsRevoke])
                #expect(trail[0].fields == [.expiresAt, .models, .providers, .requestsPerMinute, .scopes, .tokensPerDay, .tokensPerMonth])
                #expect(trail[1].fields == [.models, .requestsPerMinute])
            }
            // Read again as another process would.
            let reopened = try await place.open { store in try await store.applications().first?.policy }
            #expect(reopened?.tokensPerDay == 100_000)
        }
    }

    static func entry(_ at: String, app: String = "agent", user: String = "ada", provider: Provider = .openAI, model: String? = "gpt-4o",
                      status: Int = 200, tokens: TokenUsage = TokenUsage(input: 10, output: 5, cached: 2)) -> UsageEntry {
        UsageEntry(
            at: date(at), application: app, user: UserID(trusted: user), provider: provider, model: model, status: status, durationMilliseconds: 12,
            requestID: UUID().uuidString, tokens: tokens)
    }

    @Test("the ledger adds up a spender's tokens since each window's start, and reports by every grouping", arguments: StoreKind.available)
    func ledger(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                try await store.appendUsage([
                    Self.entry("2026-11-30T23:59:59.999Z"),
                    Self.entry("2026-12-06T23:59:59.999Z", tokens: TokenUsage(input: 100, output: 50, cached: nil)),
                    Self.entry("2026-12-07T00:00:00Z", model: nil, status: 429, tokens: TokenUsage()),
                    Self.entry("2026-12-07T10:00:00Z", provider: .anthropic, model: "claude-sonnet-4-5", tokens: TokenUsage(input: 1000, output: 7, cached: 3)),
                    Self.entry("2026-12-07T11:00:00Z", user: "grace", status: 502, tokens: TokenUsage()),
                    Self.entry("2026-12-07T12:00:00Z", app: "other", tokens: TokenUsage(input: 9, output: 9, cached: 9)),
                ])
                try await store.appendUsage([])
                let spent = try await store.tokensSpent(
                    application: "agent", user: UserID(trusted: "ada"), since: [Self.date("2026-12-07T00:00:00Z"), Self.date("2026-12-01T00:00:00Z")])
                #expect(spent == [1007, 1157])
                #expect(try await store.tokensSpent(application: "nobody", user: UserID(trusted: "ada"), since: [Self.date("2026-01-01T00:00:00Z")]) == [0])

                let byDay = try await store.usage(UsageQuery(by: .day))
                #expect(byDay.map(\.key) == ["2026-11-30", "2026-12-06", "2026-12-07"])
                #expect(byDay[2] == UsageGroup(key: "2026-12-07", requests: 4, errors: 2, inputTokens: 1009, outputTokens: 16, cachedTokens: 12))
                let byModel = try await store.usage(UsageQuery(application: "agent", since: Self.date("2026-12-07T00:00:00Z"), by: .model))
                #expect(byModel.map(\.key) == ["", "claude-sonnet-4-5", "gpt-4o"])
                #expect(byModel.map(\.requests) == [1, 1, 1])
                let byUser = try await store.usage(UsageQuery(application: "agent", by: .user))
                #expect(byUser.map(\.key) == ["ada", "grace"] && byUser.map(\.requests) == [4, 1])
                #expect(try await store.usage(UsageQuery(user: UserID(trusted: "grace"), by: .app)).map(\.key) == ["agent"])
                #expect(try await store.usage(UsageQuery(by: .provider)).map(\.key) == ["anthropic", "open_ai"])

                #expect(try await store.removeUsage(before: Self.date("2026-12-07T00:00:00Z")) == 2)
                #expect(try await store.usage(UsageQuery(by: .day)).map(\.key) == ["2026-12-07"])
            }
        }
    }

    @Test("a batch longer than one statement is written whole, and a batch sent again adds nothing twice, to the ledger or to the budgets' totals", arguments: StoreKind.available)
    func longBatch(kind: StoreKind) async throws {
        try await StoreUnderTest.with(kind) { place in
            try await place.open { store in
                let entries = (0..<1234).map { _ in Self.entry("2026-12-07T10:00:00Z") }
                try await store.appendUsage(entries)
                // Sent again, as after a write whose outcome was not known: nothing is added twice.
                try await store.appendUsage(Array(entries[1000...]) + [Self.entry("2026-12-07T10:00:00Z")])
                let groups = try await store.usage(UsageQuery(by: .app))
                #expect(groups == [UsageGroup(key: "agent", requests: 1235, errors: 0, inputTokens: 12350, outputTokens: 6175, cachedTokens: 2470)])
                // The running totals budgets read count each entry once too.
                let spent = try await store.tokensSpent(
                    application: "agent", user: UserID(trusted: "ada"), since: [Self.date("2026-12-07T00:00:00Z")])
                #expect(spent == [1235 * 15])
            }
        }
    }
}

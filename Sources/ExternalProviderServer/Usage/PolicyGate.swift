import ExternalProviderCore
import ExternalProviderStore
import Foundation

/// An application's limits as a virtual key, applied to every relayed request before it leaves, for
/// every provider: which provider and model it may call, how often, and how many tokens. A refusal is a
/// Problem naming the limit, counted by limit; the request then never reaches the provider.
struct PolicyGate: Sendable {
    /// How much of a body is read for its model: a longer one is refused when the model must be known.
    static let modelReadLimit = 8 * 1024 * 1024

    let recorder: UsageRecorder
    let rate: RequestRate
    let metrics: ServerMetrics?

    /// Whether the request's body must be read whole before it goes: to read its model, or to see whether
    /// its answer will say what it spent.
    static func readsBody(_ policy: ApplicationPolicy) -> Bool {
        policy.models != nil || !policy.budgets.isEmpty
    }

    /// Before anything is read: the provider.
    func checkProvider(_ provider: Provider, for grant: ApplicationGrant) throws(Problem) {
        guard let allowed = grant.policy.providers, !allowed.contains(provider) else { return }
        throw refused(.providers, .providerNotAllowed(grant.name, provider, allowed: allowed))
    }

    /// Before the body is read: the request rate, then the token budgets. A request let through counts
    /// towards the rate.
    func admit(_ spender: Spender, policy: ApplicationPolicy) async throws {
        let budgets = policy.budgets
        if !budgets.isEmpty {
            let now = Date()
            let starts = budgets.map { $0.window.start(of: now) }
            let spent = try await recorder.spending(of: spender, since: starts)
            for (budget, used) in zip(budgets, spent) where used >= budget.tokens {
                let limit: PolicyLimit = budget.window == .day ? .tokensPerDay : .tokensPerMonth
                throw refused(limit, .overBudget(spender, budget.window, tokens: budget.tokens, resetsAt: budget.window.end(of: now), now: now))
            }
        }
        if let perMinute = policy.requestsPerMinute, let wait = rate.admit(spender, perMinute: perMinute) {
            throw refused(.requestsPerMinute, .tooManyRequests(spender, limit: perMinute, retryAfter: wait))
        }
    }

    /// Once the body is read (up to `modelReadLimit` when `readsBody`): the models it names, and whether
    /// its answer will say what it spent. Returns the model, for the ledger.
    func checkRequest(_ request: RelayedRequest, for grant: ApplicationGrant) throws(Problem) -> String? {
        let policy = grant.policy
        if case .unreadable(.twice) = request.model {
            // Whatever the policy: the provider might read the other one.
            throw refused(.unreadableModel, .modelTwice)
        }
        if request.mintsCredential, policy != .unlimited {
            throw refused(.credential, .credentialNotAllowed(grant.name))
        }
        if let models = policy.models {
            switch request.model {
            case .none, .listing:
                break
            case .named(let model):
                guard policy.allows(model: model) else { throw refused(.models, .modelNotAllowed(grant.name, model, allowed: models)) }
            case .batch:
                throw refused(.models, .batchNotAllowed(grant.name))
            case .unreadable(let why):
                throw refused(.unreadableModel, .modelUnreadable(grant.name, why, readLimit: Self.modelReadLimit))
            }
            for model in request.otherModels where !policy.allows(model: model) {
                throw refused(.models, .modelNotAllowed(grant.name, model, allowed: models))
            }
        }
        if !policy.budgets.isEmpty {
            if case .unreadable(.tooLong) = request.model {
                throw refused(.unreadableModel, .modelUnreadable(grant.name, .tooLong, readLimit: Self.modelReadLimit))
            }
            if let uncounted = request.uncounted {
                throw refused(.unmetered, .unmetered(grant.name, uncounted))
            }
        }
        if case .named(let model) = request.model { return model }
        return nil
    }

    private func refused(_ limit: PolicyLimit, _ problem: Problem) -> Problem {
        metrics?.refusedByPolicy(limit)
        return problem
    }
}

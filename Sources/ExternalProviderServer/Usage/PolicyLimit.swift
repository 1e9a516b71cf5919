import ExternalProviderCore
import ExternalProviderStore
import Foundation

/// The limits a relayed request can be refused by: the values of the refusal metric's `limit` label.
enum PolicyLimit: String, CaseIterable, Sendable {
    case expired
    case providers
    case models
    /// The model could not be read from a request that should name one.
    case unreadableModel = "unreadable_model"
    /// A request whose answer would not report what it spent, for an application with a token budget.
    case unmetered
    /// A call that makes a credential for use directly with the provider, past every limit.
    case credential
    case requestsPerMinute = "rpm"
    case tokensPerDay = "tokens_per_day"
    case tokensPerMonth = "tokens_per_month"
}

/// The one-sentence refusals, each naming its limit. Model names are the caller's own text, shown quoted
/// and cut short.
extension Problem {
    static func expired(_ application: String, at date: Date) -> Problem {
        Problem(
            .unauthorized, "Application '\(application)' expired at \(date.formatted(.iso8601)); make a new one, or extend it with `apps update \(application) --expires …`.",
            answeredBeforeBody: true)
    }

    static func providerNotAllowed(_ application: String, _ provider: Provider, allowed: Set<Provider>) -> Problem {
        let names = Provider.allCases.filter(allowed.contains).map(\.name).joined(separator: ", ")
        return Problem(
            .forbidden, "Application '\(application)' may not use \(provider.displayName): it may use \(names.isEmpty ? "no provider" : names) only.",
            answeredBeforeBody: true)
    }

    static func modelNotAllowed(_ application: String, _ model: String, allowed: [ModelGlob]) -> Problem {
        Problem(
            .forbidden,
            "Application '\(application)' may not call model \(quoted(model)): it may call \(allowed.map(\.pattern).joined(separator: ", ")) only.")
    }

    static let modelTwice = Problem(
        .badRequest, "The request body gives 'model' more than once (in any letter case); give it once, so that no reader sees another model.")

    static func modelUnreadable(_ application: String, _ why: RequestedModel.Unreadable, readLimit: Int) -> Problem {
        switch why {
        case .twice:
            return modelTwice
        case .notJSON:
            return Problem(
                .badRequest, "Application '\(application)' may call only some models, so the request body must be a JSON object naming its 'model'; this one is not JSON.")
        case .missing:
            return Problem(.badRequest, "Application '\(application)' may call only some models, so the request body must name its 'model'.")
        case .tooLong:
            return Problem(
                .contentTooLarge,
                "Application '\(application)' may call only some models or has a token budget, so a relayed request body is read for its model and must be at most \(readLimit) bytes.")
        }
    }

    static func batchNotAllowed(_ application: String) -> Problem {
        Problem(
            .forbidden,
            "Application '\(application)' may call only some models, and a batch names a model in each of its requests, which the relay cannot check: batches are refused.")
    }

    static func unmetered(_ application: String, _ why: RelayedRequest.Uncounted) -> Problem {
        switch why {
        case .streamWithoutUsage:
            Problem(
                .badRequest,
                "Application '\(application)' has a token budget, so a streamed completion must report its usage: set \"stream_options\": {\"include_usage\": true}.")
        case .background:
            Problem(
                .badRequest,
                "Application '\(application)' has a token budget, and a background response reports its usage elsewhere, where it cannot be counted: leave out \"background\".")
        case .later:
            Problem(
                .forbidden,
                "Application '\(application)' has a token budget, and batches and jobs spend tokens later, where they cannot be counted: they are refused.")
        }
    }

    static func credentialNotAllowed(_ application: String) -> Problem {
        Problem(
            .forbidden,
            "Application '\(application)' has limits, and this call makes a credential for use directly with the provider, past them: it is refused.")
    }

    static func tooManyRequests(_ spender: Spender, limit: Int, retryAfter seconds: Int) -> Problem {
        Problem(
            .tooManyRequests,
            "Application '\(spender.application.value)' may send \(limit) requests a minute with user '\(spender.user)''s keys; retry after \(seconds) seconds.",
            headers: [.retryAfter: "\(seconds)"], answeredBeforeBody: true)
    }

    static func overBudget(_ spender: Spender, _ window: BudgetWindow, tokens: Int, resetsAt reset: Date, now: Date) -> Problem {
        let seconds = max(1, Int(reset.timeIntervalSince(now).rounded(.up)))
        let period = window == .day ? "day (UTC)" : "month (UTC)"
        return Problem(
            .tooManyRequests,
            "Application '\(spender.application.value)' has used its \(tokens) tokens a \(period) with user '\(spender.user)''s keys; the budget resets at \(reset.formatted(.iso8601)).",
            headers: [.retryAfter: "\(seconds)"], answeredBeforeBody: true)
    }

    /// A caller's text in a sentence: quoted, escaped, at most 128 characters.
    private static func quoted(_ text: String) -> String {
        let cut = text.count > 128 ? String(text.prefix(128)) + "…" : text
        return "'" + cut.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined() + "'"
    }
}

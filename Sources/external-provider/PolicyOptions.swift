import ArgumentParser
import ExternalProviderCore
import Foundation

/// An application's limits as `apps create` and `apps update` take them. Each read is checked here, so a
/// bad one fails the command before the store is opened.
struct PolicyOptions: ParsableArguments {
    @Option(name: CommandOption.models.long, help: "A model it may call, as a glob (gpt-4o*, claude-*); repeatable. Default: any.")
    var models: [String] = []

    @Option(name: CommandOption.providers.long, help: ArgumentHelp("The providers it may use: \(Provider.names); repeatable or comma-separated. Default: any."))
    var providers: [String] = []

    @Option(name: CommandOption.expires.long, help: "When its id stops working: 30d, 12h, or a date or time (2027-01-01, 2026-12-31T18:00:00Z).")
    var expires: String?

    @Option(name: CommandOption.requestsPerMinute.long, help: "Requests a minute it may send with each user's keys (counted per instance).")
    var requestsPerMinute: Int?

    @Option(name: CommandOption.tokensPerDay.long, help: "Input and output tokens it may use per UTC day with each user's keys.")
    var tokensPerDay: Int?

    @Option(name: CommandOption.tokensPerMonth.long, help: "Input and output tokens it may use per UTC month with each user's keys.")
    var tokensPerMonth: Int?

    /// Whether any limit was given.
    var givesAny: Bool {
        !models.isEmpty || !providers.isEmpty || expires != nil || requestsPerMinute != nil || tokensPerDay != nil || tokensPerMonth != nil
    }

    /// `policy` with the limits given here in place of its own.
    func applied(to policy: ApplicationPolicy, now: Date = Date()) throws(InvalidInput) -> ApplicationPolicy {
        var policy = policy
        if !models.isEmpty {
            policy.models = try models.map { text throws(InvalidInput) in try ModelGlob(text) }
        }
        if !providers.isEmpty {
            var chosen = Set<Provider>()
            for name in providers.flatMap({ $0.split(separator: ",") }).map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
                guard let provider = Provider(name: name) else { throw InvalidInput("\(CommandOption.providers.flag): unknown provider '\(name)'; use \(Provider.names)") }
                chosen.insert(provider)
            }
            policy.providers = chosen
        }
        if let expires {
            guard let moment = TimeText.moment(expires, now: now, durationsCount: 1) else {
                throw InvalidInput("\(CommandOption.expires.flag): '\(expires)' is not a duration (30d, 12h) or a date or time (2027-01-01, 2026-12-31T18:00:00Z)")
            }
            guard moment > now else { throw InvalidInput("\(CommandOption.expires.flag): \(moment.formatted(.iso8601)) has passed; give a time to come") }
            policy.expiresAt = moment
        }
        for (flag, value) in [(CommandOption.requestsPerMinute, requestsPerMinute), (CommandOption.tokensPerDay, tokensPerDay), (CommandOption.tokensPerMonth, tokensPerMonth)] {
            if let value, value < 1 { throw InvalidInput("\(flag.flag) must be at least 1") }
        }
        policy.requestsPerMinute = requestsPerMinute ?? policy.requestsPerMinute
        policy.tokensPerDay = tokensPerDay ?? policy.tokensPerDay
        policy.tokensPerMonth = tokensPerMonth ?? policy.tokensPerMonth
        return policy
    }
}

/// The limits `apps update --clear` lifts.
enum PolicyLimitName: String, CaseIterable, ExpressibleByArgument {
    case models
    case providers
    case expires
    case rpm
    case tokensPerDay = "tokens-per-day"
    case tokensPerMonth = "tokens-per-month"

    func lifted(from policy: ApplicationPolicy) -> ApplicationPolicy {
        var policy = policy
        switch self {
        case .models: policy.models = nil
        case .providers: policy.providers = nil
        case .expires: policy.expiresAt = nil
        case .rpm: policy.requestsPerMinute = nil
        case .tokensPerDay: policy.tokensPerDay = nil
        case .tokensPerMonth: policy.tokensPerMonth = nil
        }
        return policy
    }
}

extension ApplicationPolicy {
    /// The limits in one line for `apps list`: `-` for none.
    var summary: String {
        var parts: [String] = []
        if let models { parts.append("models " + models.map(\.pattern).joined(separator: ",")) }
        if let providers { parts.append("providers " + Provider.allCases.filter(providers.contains).map(\.name).joined(separator: ",")) }
        if let expiresAt { parts.append("expires \(expiresAt.formatted(.iso8601))") }
        if let requestsPerMinute { parts.append("rpm \(requestsPerMinute)") }
        if let tokensPerDay { parts.append("tokens/day \(tokensPerDay)") }
        if let tokensPerMonth { parts.append("tokens/month \(tokensPerMonth)") }
        return parts.isEmpty ? "-" : parts.joined(separator: "; ")
    }
}

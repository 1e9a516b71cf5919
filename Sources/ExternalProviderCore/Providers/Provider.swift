import Foundation

/// The providers a user can keep a key for. A new provider is a new case, its file in this folder and one
/// line in `profile`; it is a new row per user, never a schema change.
///
/// The raw value is the name the store keeps: it is written out, since it is part of every stored row and
/// of every sealed value's associated data (`SealContext`). It differs from the name people and URLs use
/// for OpenAI only (`open_ai`, for the PiecesOS contract's `open_AI`).
public enum Provider: String, Sendable, CaseIterable, Hashable, Comparable {
    case openAI = "open_ai"
    case anthropic
    case gemini
    case mistral
    case groq

    /// Everything about the provider: where it is, how its key goes on a request and is checked, how
    /// its models read, how its key is masked.
    public var profile: ProviderProfile {
        switch self {
        case .openAI: .openAI
        case .anthropic: .anthropic
        case .gemini: .gemini
        case .mistral: .mistral
        case .groq: .groq
        }
    }

    /// The name in URLs (`/relay/anthropic`), flags (`--provider anthropic`, `--anthropic-base-url`) and
    /// answers.
    public var name: String { profile.name }

    /// The name people know it by, for sentences.
    public var displayName: String { profile.displayName }

    /// The provider named `name` (`openai`, `anthropic`, …), or `nil`.
    public init?(name: String) {
        guard let found = Provider.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    /// Every name, for a sentence that lists them.
    public static var names: String { allCases.map(\.name).joined(separator: ", ") }

    public static func < (left: Provider, right: Provider) -> Bool {
        allCases.firstIndex(of: left)! < allCases.firstIndex(of: right)!
    }
}

/// One header a request carries.
public struct HeaderField: Sendable, Equatable {
    public let name: String
    public let value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A model a provider lists for a key.
public struct ListedModel: Sendable, Equatable {
    /// The id a request names it by (`gpt-4o`, `claude-sonnet-4-5`, `gemini-2.5-flash`).
    public let id: String
    /// The name the provider shows, when it gives one.
    public let displayName: String?
    /// When the provider made it available, when it says.
    public let created: Date?

    public init(id: String, displayName: String?, created: Date?) {
        self.id = id
        self.displayName = displayName
        self.created = created
    }
}

/// Everything about one provider, as data: no I/O here. The key check, the model list, the relay and the
/// command line all read it, so a provider is described once.
public struct ProviderProfile: Sendable {
    /// `openai`, `anthropic`, …: see `Provider.name`.
    public let name: String
    public let displayName: String
    /// The default of its base URL setting (`--{name}-base-url`): the root its official SDK calls
    /// (OpenAI's, kept as it always was, is the origin without `/v1`).
    public let defaultBaseURL: String
    /// What the relay's `/relay/{name}` stands for: the base URL with this after it.
    public let apiRootSuffix: String
    /// The headers that carry a stored key (and, for OpenAI, its organization) to the provider.
    public let credentialHeaders: @Sendable (ProviderKey) -> [HeaderField]
    /// Headers the relay adds when the caller sent none of that name.
    public let defaultHeaders: [HeaderField]
    /// Under the API root: the call that checks a key, `GET`, whose answer lists its models.
    public let modelsPath: String
    /// The models in the models call's answer; `nil` for an answer that does not read as one.
    public let readModels: @Sendable (Data) -> [ListedModel]?
    /// The statuses with which the provider refuses a key; the body says which refusal it is.
    public let refusalStatuses: Set<Int>
    /// For an answer with a refusal status: the provider's code for why the key is refused, or `nil`
    /// when the answer is not about the key (Gemini's 400 is also its answer to a malformed request).
    public let refusalCode: @Sendable (_ status: Int, _ body: Data?) -> String?
    /// Statuses that say the key works although the call did not (Anthropic's 402: no credit).
    public let keyValidStatuses: Set<Int>
    /// How its keys are shown.
    public let mask: KeyMask
    /// Whether a key may come with an organization: OpenAI's only.
    public let takesOrganization: Bool
    /// Where a relayed request names its model, for applications limited to some models.
    public let models: ModelRoutes

    /// What the answer to a check says of the key.
    public func outcome(status: Int, body: Data?) -> VerificationOutcome {
        if refusalStatuses.contains(status), let code = refusalCode(status, body) { return .rejected(code: code) }
        if (200..<300).contains(status) || keyValidStatuses.contains(status) { return .accepted }
        switch status {
        case 300..<400:
            return .unavailable(reason: "\(displayName) answered with a redirect (\(status)), which is not followed because it would send the key elsewhere")
        case 429:
            return .rateLimited
        case 500..<600:
            return .unavailable(reason: "\(displayName) answered \(status)")
        default:
            return .unavailable(reason: "\(displayName) answered an unexpected \(status)")
        }
    }

}

/// How a provider's keys are shown in every answer: never more than a start every key of the provider
/// shares and the last four characters.
public enum KeyMask: Sendable, Equatable {
    /// The first three characters, as OpenAI's dashboard shows them (`sk-...Wxyz`), kept as it always was.
    case firstThreeCharacters
    /// The start every key of the provider has (`sk-ant-...Wxyz`, `AIza...Wxyz`), shown only when the key
    /// has it; `""`: nothing before the last four (`...Wxyz`).
    case knownPrefix(String)

    /// Below this length the last four characters would reveal too much of the key.
    public static let minimumMaskableLength = 20

    public func apply(to key: String) -> String {
        guard key.count >= Self.minimumMaskableLength else { return "****" }
        switch self {
        case .firstThreeCharacters:
            return "\(key.prefix(3))...\(key.suffix(4))"
        case .knownPrefix(let prefix):
            return (!prefix.isEmpty && key.hasPrefix(prefix) ? prefix : "") + "..." + key.suffix(4)
        }
    }
}

/// Reading providers' JSON answers, keeping only what looks like a code.
enum ProviderJSON {
    static func object(_ body: Data?) -> [String: Any]? {
        guard let body else { return nil }
        return try? JSONSerialization.jsonObject(with: body) as? [String: Any]
    }

    /// `text` if it looks like an error code (`invalid_api_key`, `API_KEY_INVALID`), so nothing else of a
    /// body, such as a message quoting the masked key, is ever repeated.
    static func code(_ text: Any?) -> String? {
        guard let text = text as? String, (1...64).contains(text.count),
            text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") })
        else { return nil }
        return text
    }

    /// A time as RFC 3339 (`2025-02-19T00:00:00Z`) or seconds since 1970.
    static func date(_ value: Any?) -> Date? {
        if let seconds = value as? Double { return Date(timeIntervalSince1970: seconds) }
        if let seconds = value as? Int { return Date(timeIntervalSince1970: TimeInterval(seconds)) }
        guard let text = value as? String else { return nil }
        return try? Date(text, strategy: .iso8601)
    }
}

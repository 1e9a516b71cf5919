import Foundation

/// What an application may do with the keys it uses, as a virtual key: which models and providers, until
/// when, how often, and how many tokens. Nothing set means no limit.
public struct ApplicationPolicy: Sendable, Equatable {
    /// The models it may call, as globs (`gpt-4o*`, `claude-*`); `nil`: any.
    public var models: [ModelGlob]?
    /// The providers it may use; `nil`: any.
    public var providers: Set<Provider>?
    /// After this its id is refused.
    public var expiresAt: Date?
    /// Requests per minute, per user whose key it uses.
    public var requestsPerMinute: Int?
    /// Input and output tokens together per UTC day, per user whose key it uses.
    public var tokensPerDay: Int?
    /// Input and output tokens together per UTC calendar month, per user whose key it uses.
    public var tokensPerMonth: Int?

    public init(
        models: [ModelGlob]? = nil, providers: Set<Provider>? = nil, expiresAt: Date? = nil, requestsPerMinute: Int? = nil,
        tokensPerDay: Int? = nil, tokensPerMonth: Int? = nil
    ) {
        self.models = models
        self.providers = providers
        self.expiresAt = expiresAt
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerDay = tokensPerDay
        self.tokensPerMonth = tokensPerMonth
    }

    public static let unlimited = ApplicationPolicy()

    /// Whether it may call `model`.
    public func allows(model: String) -> Bool {
        models.map { globs in globs.contains { $0.matches(model) } } ?? true
    }

    /// Whether it may use `provider`.
    public func allows(_ provider: Provider) -> Bool {
        providers?.contains(provider) ?? true
    }

    /// Whether it has expired at `now`.
    public func hasExpired(at now: Date) -> Bool {
        expiresAt.map { now >= $0 } ?? false
    }

    /// The token budgets it has, each with its window.
    public var budgets: [(window: BudgetWindow, tokens: Int)] {
        [(BudgetWindow.day, tokensPerDay), (BudgetWindow.month, tokensPerMonth)].compactMap { window, tokens in tokens.map { (window, $0) } }
    }
}

/// A model glob: `*` stands for any run of characters, `?` for one; anything else for itself, compared
/// by its UTF-8 bytes, as model ids are.
public struct ModelGlob: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let pattern: String

    public init(_ pattern: String) throws(InvalidInput) {
        guard !pattern.isEmpty, pattern.utf8.count <= 256, !pattern.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\n" })
        else { throw InvalidInput("A model pattern is 1 to 256 characters, with no control characters: '\(pattern)' is not.") }
        self.pattern = pattern
    }

    public var description: String { pattern }

    public func matches(_ model: String) -> Bool {
        Self.match(Array(pattern.utf8)[...], Array(model.utf8)[...])
    }

    /// Glob matching with one step of backtracking per `*`: linear in practice, never exponential.
    private static func match(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var t = text.startIndex
        var star: Int?
        var resume = text.startIndex
        while t < text.endIndex {
            if p < pattern.endIndex, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = t
                p += 1
            } else if let star {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }
}

/// The window a token budget counts over, in UTC.
public enum BudgetWindow: String, Sendable, CaseIterable {
    case day
    case month

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// When the window holding `date` began.
    public func start(of date: Date) -> Date {
        let parts: Set<Calendar.Component> = self == .day ? [.year, .month, .day] : [.year, .month]
        return Self.calendar.date(from: Self.calendar.dateComponents(parts, from: date))!
    }

    /// When the window holding `date` ends, and the next begins.
    public func end(of date: Date) -> Date {
        Self.calendar.date(byAdding: self == .day ? .day : .month, value: 1, to: start(of: date))!
    }
}

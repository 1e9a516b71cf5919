import Foundation

/// One relayed request, as the usage ledger keeps it: who spent whose key on what, and how many
/// tokens. Never a key, a body or anything the request or the answer carried but these counts.
public struct UsageEntry: Sendable, Equatable {
    /// Made with the entry: a batch sent again after a write whose outcome was not known (a store that
    /// did not answer in time may still commit it) adds no entry twice.
    public let id: UUID
    /// When the answer ended.
    public let at: Date
    /// The application's name, never its id.
    public let application: String
    public let user: UserID
    public let provider: Provider
    /// The model the request named, if it named one.
    public let model: String?
    /// The answer's status: the provider's, or the relay's own refusal.
    public let status: Int
    public let durationMilliseconds: Int
    public let requestID: String
    /// `nil` counts: the answer reported none.
    public let tokens: TokenUsage

    public init(
        id: UUID = UUID(), at: Date, application: String, user: UserID, provider: Provider, model: String?, status: Int,
        durationMilliseconds: Int, requestID: String, tokens: TokenUsage
    ) {
        self.id = id
        self.at = at
        self.application = application
        self.user = user
        self.provider = provider
        self.model = model
        self.status = status
        self.durationMilliseconds = durationMilliseconds
        self.requestID = requestID
        self.tokens = tokens
    }
}

/// Which ledger entries to add up, and by what.
public struct UsageQuery: Sendable, Equatable {
    public enum Grouping: String, Sendable, CaseIterable {
        /// By UTC day: `2026-12-07`.
        case day
        case model
        case app
        case user
        case provider
    }

    public var application: String?
    public var user: UserID?
    public var since: Date?
    public var by: Grouping

    public init(application: String? = nil, user: UserID? = nil, since: Date? = nil, by: Grouping = .day) {
        self.application = application
        self.user = user
        self.since = since
        self.by = by
    }
}

/// The entries of one group, added up.
public struct UsageGroup: Sendable, Equatable {
    /// The day, model, application, user or provider; `""` for entries with no model.
    public let key: String
    public let requests: Int
    /// Entries whose status was 400 or more.
    public let errors: Int
    public let inputTokens: Int
    public let outputTokens: Int
    public let cachedTokens: Int

    public init(key: String, requests: Int, errors: Int, inputTokens: Int, outputTokens: Int, cachedTokens: Int) {
        self.key = key
        self.requests = requests
        self.errors = errors
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedTokens = cachedTokens
    }
}

/// Where the ledger is kept: every store keeps it beside the keys. Entries arrive in batches, written off
/// the answers' path; budgets and reports read them back.
public protocol UsageLedger: Sendable {
    /// Adds the entries in one transaction: all of them or none. An entry already there (by `id`) is left
    /// as it is.
    func appendUsage(_ entries: [UsageEntry]) async throws
    /// The tokens (input and output) that `application` spent on `user`'s keys from the UTC day of each
    /// of `since` on, in the same order: read from running totals per day kept with the entries, so that
    /// a budget's check costs the same whatever the ledger holds.
    func tokensSpent(application: String, user: UserID, since: [Date]) async throws -> [Int]
    /// The entries that match the query, added up per group, in the grouping's order.
    func usage(_ query: UsageQuery) async throws -> [UsageGroup]
    /// Removes the entries before `cutoff` and returns how many there were.
    func removeUsage(before cutoff: Date) async throws -> Int
}

/// A UTC day as the ledger's running totals are kept by: days since 1970-01-01, written out as a number
/// in both stores.
public enum LedgerDay {
    public static func of(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 / 86400).rounded(.down))
    }
}

extension UsageEntry {
    /// Its key in the running totals, when it spent any tokens.
    public var total: (application: String, user: String, day: Int, tokens: Int)? {
        let tokens = self.tokens.total
        return tokens > 0 ? (application, user.rawValue, LedgerDay.of(at), tokens) : nil
    }
}

/// Running totals of tokens by (application, user, day), added up as entries are written.
public struct LedgerTotals {
    private struct Key: Hashable {
        let application: String
        let user: ExactText
        let day: Int
    }

    private var tokens: [Key: Int] = [:]

    public init() {}

    public mutating func add(_ entry: UsageEntry) {
        guard let total = entry.total else { return }
        tokens[Key(application: total.application, user: ExactText(total.user), day: total.day), default: 0] += total.tokens
    }

    /// In one order, so that two writers lock the totals' rows in the same order and never deadlock.
    public var sorted: [(application: String, user: String, day: Int, tokens: Int)] {
        tokens.map { ($0.key.application, $0.key.user.value, $0.key.day, $0.value) }.sorted { left, right in
            if !left.application.isByteIdentical(to: right.application) {
                return left.application.utf8.lexicographicallyPrecedes(right.application.utf8)
            }
            if !left.user.isByteIdentical(to: right.user) { return left.user.utf8.lexicographicallyPrecedes(right.user.utf8) }
            return left.day < right.day
        }
    }
}

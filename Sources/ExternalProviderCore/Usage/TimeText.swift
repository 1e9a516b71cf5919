import Foundation

/// Moments and durations as people type them on a command line or in a query: `30d`, `12h`, `90m`,
/// `3600` (seconds); `2027-01-01` (midnight UTC) or `2026-12-31T18:00:00Z`.
public enum TimeText {
    /// Seconds in `30d`, `12h`, `90m`, `45s` or `3600`; `nil` for anything else, or a value that is not
    /// finite.
    public static func duration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let last = text.last else { return nil }
        let number = units[last] == nil ? Double(text) : Double(text.dropLast()).map { $0 * units[last]! }
        return number.flatMap { $0.isFinite ? $0 : nil }
    }

    /// `2027-01-01` as midnight UTC, or an ISO 8601 date and time with its zone.
    public static func date(_ text: String) -> Date? {
        if text.utf8.count == 10, let day = try? Date("\(text)T00:00:00Z", strategy: .iso8601) { return day }
        if let moment = try? Date(text, strategy: .iso8601) { return moment }
        return try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// A moment `text` names: a date or time, or, as a duration, that long `after` (a positive sign) or
    /// before (a negative one) `now`.
    public static func moment(_ text: String, now: Date, durationsCount direction: Double) -> Date? {
        if let seconds = duration(text), seconds >= 0 { return now.addingTimeInterval(direction * seconds) }
        return date(text)
    }
}

extension UsageQuery {
    /// The query a caller asked for, each parameter as typed (empty is the same as left out);
    /// `InvalidInput` names the one that does not read.
    public init(application: String?, user: String?, since: String?, by: String?, now: Date = Date()) throws(InvalidInput) {
        func given(_ text: String?) -> String? { text.flatMap { $0.isEmpty ? nil : $0 } }
        var grouping = Grouping.day
        if let by = given(by) {
            guard let read = Grouping(rawValue: by) else {
                throw InvalidInput("'by' must be one of \(Grouping.allCases.map(\.rawValue).joined(separator: ", ")), not '\(by.prefix(40))'.")
            }
            grouping = read
        }
        var start: Date?
        if let since = given(since) {
            guard let moment = TimeText.moment(since, now: now, durationsCount: -1) else {
                throw InvalidInput(
                    "'since' must be a date (2026-12-01), a time (2026-12-01T12:00:00Z) or a duration back from now (7d, 12h), not '\(since.prefix(40))'.")
            }
            start = moment
        }
        let userID = try given(user).map { text throws(InvalidInput) in try UserID(validating: text) }
        self.init(application: given(application), user: userID, since: start, by: grouping)
    }
}

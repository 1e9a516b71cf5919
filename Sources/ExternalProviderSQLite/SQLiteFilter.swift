import GRDB

/// A `WHERE` clause of the conditions a query was given, each with its argument; none given, no clause.
struct SQLiteFilter {
    private var conditions: [String] = []
    private(set) var arguments = StatementArguments()

    /// Adds `condition` (with one `?`) when `value` is given.
    mutating func add(_ condition: String, _ value: (any DatabaseValueConvertible)?) {
        guard let value else { return }
        conditions.append(condition)
        arguments += [value]
    }

    var clause: String { conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") }
}

import Foundation

/// How the listing commands print: a JSON array for scripts, or a table for people.
enum Printing {
    static func json(_ rows: [[String: Any]]) throws {
        let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// One table line: each cell padded to its column's width, and always at least one space after it.
    static func row(_ cells: [(String, Int)], last: String) {
        print(cells.map { text, width in text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }.joined() + last)
    }
}

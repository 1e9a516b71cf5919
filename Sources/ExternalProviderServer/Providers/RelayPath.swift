import Foundation

/// The part of a relayed request's path that goes upstream: the segments after the route's own, as the
/// client sent them (still percent-encoded), joined to the provider's API root.
///
/// The router skips empty segments, so `//open_ai/v1/models` matches the relay's route; a path rebuilt
/// by cutting a fixed number of characters off it then goes upstream as something else. Here the path is
/// taken apart segment by segment instead, and any segment an upstream might fold into another path is
/// refused: an empty one (`//`), a dot segment (`.`, `..`, also percent-encoded), and one that decodes to
/// a slash, a backslash or a control character. Nothing is normalised.
struct RelayPath: Equatable {
    /// The segments after the route's own, as sent.
    let remainder: [Substring]
    /// The same segments percent-decoded, as the provider reads them: decoded once, by the check.
    let decodedRemainder: [String]

    static let refusal = Problem(
        .badRequest,
        "A relayed path must not contain empty segments ('//'), dot segments ('.', '..') or encoded slashes; send the path as the provider's API spells it.",
        answeredBeforeBody: true)

    /// `rawPath`: the path as the client sent it, without the query. `routeSegments`: how many segments
    /// the route's own part has (`/open_ai/v1` has 2).
    init(rawPath: String, routeSegments: Int) throws(Problem) {
        guard rawPath.hasPrefix("/") else { throw Self.refusal }
        let segments = rawPath.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard segments.count > routeSegments else { throw Self.refusal }
        var decoded: [String] = []
        for (index, segment) in segments.enumerated() {
            guard let plain = Self.plainDecoded(Substring(segment)) else { throw Self.refusal }
            if index >= routeSegments { decoded.append(plain) }
        }
        remainder = segments.dropFirst(routeSegments).map { Substring($0) }
        decodedRemainder = decoded
    }

    /// A segment percent-decoded; Foundation's decoding only when there is a `%` to decode, as there
    /// rarely is (it costs more than the rest of the path's checks together).
    private static func decoded(_ segment: Substring) -> String? {
        segment.utf8.contains(UInt8(ascii: "%")) ? segment.removingPercentEncoding : String(segment)
    }

    /// `base` (the API root, with its own path and no trailing slash) joined with the remainder and the
    /// query, as sent.
    func url(base: String, query: String?) -> String {
        var url = base
        for segment in remainder {
            url += "/"
            url += segment
        }
        if let query { url += "?" + query }
        return url
    }

    /// A segment decoded, if an upstream can only read it as itself; `nil` if it could read it as
    /// something else.
    private static func plainDecoded(_ segment: Substring) -> String? {
        guard !segment.isEmpty, let decoded = decoded(segment) else { return nil }
        if decoded == "." || decoded == ".." { return nil }
        let folds = decoded.unicodeScalars.contains { scalar in
            scalar == "/" || scalar == "\\" || scalar.properties.generalCategory == .control
        }
        return folds ? nil : decoded
    }
}

/// The PiecesOS user id that owns a set of keys, validated once at the edge.
public struct UserID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(validating raw: String) throws(InvalidInput) {
        try FieldRules.user.check(raw)
        self.rawValue = raw
    }

    /// For values read back from the store, which only ever holds validated ids.
    public init(trusted raw: String) {
        self.rawValue = raw
    }

    public var description: String { rawValue }
}

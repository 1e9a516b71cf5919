/// The PiecesOS user id that owns a set of keys, validated once at the edge. Two ids are the same user
/// only when their UTF-8 bytes are the same, as in the store: no Unicode normalisation is applied, so
/// "café" sent precomposed and decomposed are two users.
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

    public static func == (left: UserID, right: UserID) -> Bool {
        left.rawValue.isByteIdentical(to: right.rawValue)
    }

    public func hash(into hasher: inout Hasher) {
        rawValue.hashBytes(into: &hasher)
    }
}

/// A request that is well-formed JSON but breaks a field rule. The message names the field and the rule,
/// never the value, so it is safe to return and to log.
public struct InvalidInput: Error, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// The limits on every string a request can carry: the one place they are written down.
public struct FieldRules: Sendable {
    public static let userMaxBytes = 256
    public static let fieldMaxBytes = 1024

    /// A user id is named in logs and messages: no character in it may break a line or reorder one.
    public static let user = FieldRules(name: "user", maxBytes: userMaxBytes, allowsEmpty: false, allowsWhitespace: true, allowsFormatCharacters: false)
    public static let apiKey = FieldRules(name: "api_key", maxBytes: fieldMaxBytes, allowsEmpty: true, allowsWhitespace: false)
    public static let apiKeyName = FieldRules(name: "name", maxBytes: fieldMaxBytes, allowsEmpty: true, allowsWhitespace: true)
    public static let organizationKey = FieldRules(name: "organization", maxBytes: fieldMaxBytes, allowsEmpty: true, allowsWhitespace: false)

    /// The same rules under another field name.
    public func named(_ name: String) -> FieldRules {
        FieldRules(name: name, maxBytes: maxBytes, allowsEmpty: allowsEmpty, allowsWhitespace: allowsWhitespace, allowsFormatCharacters: allowsFormatCharacters)
    }

    public let name: String
    public let maxBytes: Int
    public let allowsEmpty: Bool
    /// Keys and organization ids never contain spaces: one almost always means a paste went wrong.
    public let allowsWhitespace: Bool
    /// Format characters (bidirectional controls such as U+202E, zero-width joiners) are invisible and
    /// can reorder a line of text on screen.
    public let allowsFormatCharacters: Bool

    init(name: String, maxBytes: Int, allowsEmpty: Bool, allowsWhitespace: Bool, allowsFormatCharacters: Bool = true) {
        self.name = name
        self.maxBytes = maxBytes
        self.allowsEmpty = allowsEmpty
        self.allowsWhitespace = allowsWhitespace
        self.allowsFormatCharacters = allowsFormatCharacters
    }

    public func check(_ value: String) throws(InvalidInput) {
        if value.isEmpty, !allowsEmpty {
            throw InvalidInput("Field '\(name)' must not be empty.")
        }
        if value.utf8.count > maxBytes {
            throw InvalidInput("Field '\(name)' must be at most \(maxBytes) bytes.")
        }
        for scalar in value.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control:
                throw InvalidInput("Field '\(name)' must not contain control characters.")
            case .lineSeparator, .paragraphSeparator:
                throw InvalidInput("Field '\(name)' must not contain line or paragraph separators.")
            case .format where !allowsFormatCharacters:
                throw InvalidInput("Field '\(name)' must not contain invisible format characters such as bidirectional controls.")
            default:
                break
            }
            if !allowsWhitespace, scalar.properties.isWhitespace {
                throw InvalidInput("Field '\(name)' must not contain spaces.")
            }
        }
    }
}

/// The names a request gives a key's three fields, for the sentences that name a field at fault.
public struct KeyFieldNames: Sendable {
    public let apiKey: String
    public let name: String
    public let organization: String

    /// The PiecesOS contract's: `open_AI.api_key`, `open_AI.api_key_name`, `open_AI.organization_key`.
    public static let contract = KeyFieldNames(apiKey: "open_AI.api_key", name: "open_AI.api_key_name", organization: "open_AI.organization_key")
    /// The keys API's: `api_key`, `name`, `organization`.
    public static let keysAPI = KeyFieldNames(apiKey: "api_key", name: "name", organization: "organization")
}

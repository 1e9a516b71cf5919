import Foundation

/// What the provider last said of a stored key: nothing yet, that it works, or that it refused it.
public enum KeyHealth: Sendable, Equatable {
    case unverified
    case valid(checkedAt: Date)
    /// `code` is the provider's error code, e.g. `invalid_api_key`.
    case rejected(checkedAt: Date, code: String)

    /// The word for each health: what the store keeps, what metrics label, what `keys list --health`
    /// takes. Written out, since it is stored.
    public enum Word: String, Sendable, CaseIterable {
        case unverified
        case valid
        case rejected
    }

    public var word: Word {
        switch self {
        case .unverified: .unverified
        case .valid: .valid
        case .rejected: .rejected
        }
    }

    /// The word, as text.
    public var name: String { word.rawValue }

    public var checkedAt: Date? {
        switch self {
        case .unverified: nil
        case .valid(let at), .rejected(let at, _): at
        }
    }
}

/// One stored key as an operator sees it: never the key itself, only its mask.
public struct StoredKeySummary: Sendable, Equatable {
    public let user: UserID
    public let globalID: UUID
    public let provider: Provider
    public let maskedKey: String
    public let name: String?
    public let organization: String?
    public let createdAt: Date
    public let updatedAt: Date
    public let health: KeyHealth

    public init(
        user: UserID, globalID: UUID, provider: Provider, maskedKey: String, name: String?, organization: String?,
        createdAt: Date, updatedAt: Date, health: KeyHealth
    ) {
        self.user = user
        self.globalID = globalID
        self.provider = provider
        self.maskedKey = maskedKey
        self.name = name
        self.organization = organization
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.health = health
    }
}

import Foundation

/// A stored provider key and its descriptive fields. `apiKey` is the whole secret: it never leaves the
/// server except to the provider itself; responses carry it masked (`KeyMask`).
public struct ProviderKey: Sendable, Equatable {
    public var apiKey: String
    public var apiKeyName: String?
    public var organizationKey: String?

    public init(apiKey: String, apiKeyName: String? = nil, organizationKey: String? = nil) {
        self.apiKey = apiKey
        self.apiKeyName = apiKeyName
        self.organizationKey = organizationKey
    }

    /// Byte for byte: a change the store would see is never mistaken for no change.
    public static func == (left: ProviderKey, right: ProviderKey) -> Bool {
        left.hasSameCredentials(as: right) && left.apiKeyName.isByteIdentical(to: right.apiKeyName)
    }

    /// Whether the (key, organization) pair the provider checks is the same, byte for byte.
    public func hasSameCredentials(as other: ProviderKey) -> Bool {
        apiKey.isByteIdentical(to: other.apiKey) && organizationKey.isByteIdentical(to: other.organizationKey)
    }
}

/// Everything the service keeps about one PiecesOS user.
public struct UserAccount: Sendable, Equatable {
    public let user: UserID
    /// Made on the user's first create and stable from then on, even after every key is deleted.
    public let globalID: UUID
    public var keys: [Provider: ProviderKey]

    public init(user: UserID, globalID: UUID, keys: [Provider: ProviderKey] = [:]) {
        self.user = user
        self.globalID = globalID
        self.keys = keys
    }
}

import Foundation

/// What a provider checks: the key, and the organization it is used under (`nil`: the key's default).
public struct ProviderCredentials: Sendable, Equatable {
    public let provider: Provider
    public let apiKey: String
    public let organization: String?

    public init(provider: Provider, apiKey: String, organization: String?) {
        self.provider = provider
        self.apiKey = apiKey
        self.organization = organization
    }

    public init(_ provider: Provider, _ key: ProviderKey) {
        self.init(provider: provider, apiKey: key.apiKey, organization: key.organizationKey)
    }

    public static func == (left: ProviderCredentials, right: ProviderCredentials) -> Bool {
        left.provider == right.provider && left.apiKey.isByteIdentical(to: right.apiKey)
            && left.organization.isByteIdentical(to: right.organization)
    }
}

/// How a write relates to the provider's check of its credentials.
public enum Verification: Sendable, Equatable {
    /// Verification is off: keys are stored unchecked.
    case off
    /// The provider accepted `credentials` just now; `nil` when the operation changes no credentials.
    case accepted(ProviderCredentials?, at: Date)
}

extension KeyOperation {
    /// The credentials the provider must accept before this operation may be stored on top of `account`:
    /// those of a create, and those an update leaves behind when the (key, organization) pair changes.
    /// `nil` when nothing needs checking: a delete, a name change, a no-op.
    public func credentialsToVerify(on account: UserAccount?) -> ProviderCredentials? {
        switch self {
        case .create(let new):
            return ProviderCredentials(new.provider, new.key)
        case .update(let patch?):
            guard let current = account?.keys[patch.provider] else { return nil }
            let after = patch.applied(to: current)
            return after.hasSameCredentials(as: current) ? nil : ProviderCredentials(patch.provider, after)
        case .update(nil), .delete:
            return nil
        }
    }
}

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

/// What the provider said about a (key, organization) pair.
public enum VerificationOutcome: Sendable, Equatable {
    case accepted
    /// The provider refused the pair (401/403); `code` is its error code, e.g. `invalid_api_key`.
    case rejected(code: String)
    /// No usable answer: refused connection, TLS failure, redirect, 5xx, anything unexpected.
    case unavailable(reason: String)
    /// The provider is limiting requests (429): ask again later, and less often.
    case rateLimited
    case timedOut
}

/// Checks credentials with their provider before they are stored.
public protocol KeyVerifier: Sendable {
    func verify(_ credentials: ProviderCredentials) async -> VerificationOutcome
}


extension KeyOperation {
    /// The credentials the provider must accept before this operation may be stored on top of `account`:
    /// those of a create, and those an update leaves behind when the (key, organization) pair changes.
    /// `nil` when nothing needs checking: a delete, a name change, a no-op.
    public func credentialsToVerify(on account: UserAccount?) -> ProviderCredentials? {
        switch self {
        case .create(let new):
            return ProviderCredentials(new.provider, new.key)
        case .put(let new):
            // The same pair again needs no check: only a name change, or nothing.
            if let current = account?.keys[new.provider], current.hasSameCredentials(as: new.key) { return nil }
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

import Foundation

/// An edit to one optional descriptive field: absent keeps it, `""` clears it, anything else replaces it.
public enum FieldEdit: Sendable, Equatable {
    case keep
    case clear
    case set(String)

    public init(_ value: String?) {
        switch value {
        case nil: self = .keep
        case let value? where value.isEmpty: self = .clear
        case let value?: self = .set(value)
        }
    }

    func applied(to current: String?) -> String? {
        switch self {
        case .keep: current
        case .clear: nil
        case .set(let value): value
        }
    }

    public static func == (left: FieldEdit, right: FieldEdit) -> Bool {
        switch (left, right) {
        case (.keep, .keep), (.clear, .clear): true
        case (.set(let a), .set(let b)): a.isByteIdentical(to: b)
        default: false
        }
    }
}

/// The fields of a create, already checked against `FieldRules`.
public struct NewKey: Sendable, Equatable {
    public let provider: Provider
    public let key: ProviderKey

    public init(
        provider: Provider, apiKey: String?, apiKeyName: String?, organizationKey: String?, fields: KeyFieldNames = .contract
    ) throws(InvalidInput) {
        guard let apiKey, !apiKey.isEmpty else {
            throw InvalidInput("Field '\(fields.apiKey)' is required and must not be empty.")
        }
        try FieldRules.apiKey.named(fields.apiKey).check(apiKey)
        try apiKeyName.map { value throws(InvalidInput) in try FieldRules.apiKeyName.named(fields.name).check(value) }
        try organizationKey.map { value throws(InvalidInput) in try FieldRules.organizationKey.named(fields.organization).check(value) }
        try Self.checkOrganization(organizationKey, of: provider, field: fields.organization)
        self.provider = provider
        // An empty optional field on create means the same as an absent one.
        self.key = ProviderKey(
            apiKey: apiKey,
            apiKeyName: apiKeyName.flatMap { $0.isEmpty ? nil : $0 },
            organizationKey: organizationKey.flatMap { $0.isEmpty ? nil : $0 }
        )
    }
}

extension NewKey {
    /// Only a provider that takes an organization (OpenAI) may be given one; an empty one is none.
    static func checkOrganization(_ organization: String?, of provider: Provider, field: String) throws(InvalidInput) {
        guard let organization, !organization.isEmpty, !provider.profile.takesOrganization else { return }
        throw InvalidInput("Field '\(field)' is OpenAI's only: \(provider.displayName) keys have no organization.")
    }
}

/// The fields of an update, already checked against `FieldRules`. Only delete removes a key, so an
/// absent or empty `api_key` keeps the stored one.
public struct KeyPatch: Sendable, Equatable {
    public let provider: Provider
    public let apiKey: String?
    public let apiKeyName: FieldEdit
    public let organizationKey: FieldEdit

    public init(
        provider: Provider, apiKey: String?, apiKeyName: String?, organizationKey: String?, fields: KeyFieldNames = .contract
    ) throws(InvalidInput) {
        try apiKey.map { value throws(InvalidInput) in try FieldRules.apiKey.named(fields.apiKey).check(value) }
        try apiKeyName.map { value throws(InvalidInput) in try FieldRules.apiKeyName.named(fields.name).check(value) }
        try organizationKey.map { value throws(InvalidInput) in try FieldRules.organizationKey.named(fields.organization).check(value) }
        try NewKey.checkOrganization(organizationKey, of: provider, field: fields.organization)
        self.provider = provider
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.apiKeyName = FieldEdit(apiKeyName)
        self.organizationKey = FieldEdit(organizationKey)
    }

    public func applied(to key: ProviderKey) -> ProviderKey {
        ProviderKey(
            apiKey: apiKey ?? key.apiKey,
            apiKeyName: apiKeyName.applied(to: key.apiKeyName),
            organizationKey: organizationKey.applied(to: key.organizationKey)
        )
    }
}

/// The operations on one user's keys, as changes to the account: the three of the ExternalProvider API,
/// and the keys API's `put`.
public enum KeyOperation: Sendable, Equatable {
    case create(NewKey)
    /// Stores the key, or replaces the one the provider has: name and organization as given, none when
    /// not given. The same key again changes nothing.
    case put(NewKey)
    /// `nil`: the request named no provider, so nothing changes.
    case update(KeyPatch?)
    /// The providers whose keys to remove; empty removes nothing.
    case delete(Set<Provider>)
}

/// Why an operation cannot apply to the user's current state.
public enum StateConflict: Error, Equatable, Sendable {
    case unknownUser(UserID)
    case keyExists(UserID, Provider)
    case noKey(UserID, Provider)

    public var message: String {
        switch self {
        case .unknownUser(let user):
            "User '\(user)' is unknown: create a key for it first."
        case .keyExists(let user, let provider):
            "User '\(user)' already has an \(provider.displayName) key: use /external_provider/api_key/update to change it."
        case .noKey(let user, let provider):
            "User '\(user)' has no \(provider.displayName) key to update: use /external_provider/api_key/create first."
        }
    }
}

extension KeyOperation {
    /// What the audit trail calls this operation on `account`: a put of a key the account has not got
    /// is a create.
    public func auditAction(on account: UserAccount?) -> AuditAction {
        switch self {
        case .create: .create
        case .put(let new): account?.keys[new.provider] == nil ? .create : .update
        case .update: .update
        case .delete: .delete
        }
    }

    /// Applies the operation to the user's current account (`nil` if the user is unknown) and returns the
    /// account after it. Pure, so every store shares these rules and runs them inside its own transaction.
    public func apply(to account: UserAccount?, user: UserID, newGlobalID: () -> UUID = UUID.init) throws(StateConflict) -> UserAccount {
        switch self {
        case .create(let new):
            var account = account ?? UserAccount(user: user, globalID: newGlobalID())
            guard account.keys[new.provider] == nil else { throw .keyExists(user, new.provider) }
            account.keys[new.provider] = new.key
            return account
        case .put(let new):
            var account = account ?? UserAccount(user: user, globalID: newGlobalID())
            account.keys[new.provider] = new.key
            return account
        case .update(let patch):
            guard var account else { throw .unknownUser(user) }
            guard let patch else { return account }
            guard let key = account.keys[patch.provider] else { throw .noKey(user, patch.provider) }
            account.keys[patch.provider] = patch.applied(to: key)
            return account
        case .delete(let providers):
            guard var account else { throw .unknownUser(user) }
            for provider in providers {
                account.keys[provider] = nil
            }
            return account
        }
    }
}

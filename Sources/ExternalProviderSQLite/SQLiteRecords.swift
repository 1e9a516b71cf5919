import ExternalProviderCore
import Foundation
import ExternalProviderStore
import GRDB

/// One row per user: the id that owns the keys and its stable `global_id`.
struct UserAccountRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "user_account"

    var user: String
    var globalID: String
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case user
        case globalID = "global_id"
        case createdAt = "created_at"
    }
}

/// One row per (user, provider), so a provider beyond OpenAI is a new row, not a schema change.
/// `api_key` and `organization_key` hold sealed values only (see `MasterKey.seal`).
struct ProviderKeyRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "provider_key"

    var user: String
    var provider: String
    var apiKey: Data
    var apiKeyName: String?
    var organizationKey: Data?
    /// When the provider last accepted this row's (key, organization) pair; `nil` if never checked.
    var verifiedAt: Date?
    var createdAt: Date
    var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case user
        case provider
        case apiKey = "api_key"
        case apiKeyName = "api_key_name"
        case organizationKey = "organization_key"
        case verifiedAt = "verified_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    init(user: UserID, provider: Provider, key: ProviderKey, sealedWith codec: SealedKeyCodec, createdAt: Date, updatedAt: Date) throws {
        self.user = user.rawValue
        self.provider = provider.rawValue
        self.apiKey = Data()
        self.apiKeyName = nil
        self.verifiedAt = nil
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        try store(key, sealedWith: codec)
    }

    mutating func store(_ key: ProviderKey, sealedWith codec: SealedKeyCodec) throws {
        let sealed = try codec.seal(key, user: user, provider: provider)
        apiKey = sealed.apiKey
        organizationKey = sealed.organizationKey
        apiKeyName = key.apiKeyName
    }

    func key(openedWith codec: SealedKeyCodec) throws -> ProviderKey {
        try codec.open(.init(apiKey: apiKey, organizationKey: organizationKey), name: apiKeyName, user: user, provider: provider)
    }

    /// Opens both sealed fields with `old` and seals them again with `new`.
    mutating func reseal(from old: SealedKeyCodec, to new: SealedKeyCodec) throws {
        try store(key(openedWith: old), sealedWith: new)
    }
}

/// One row per application that may call the API; only the SHA-256 of its id is kept.
struct ApplicationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "application"

    var name: String
    var idHash: Data
    var createdAt: Date
    var revokedAt: Date?
    /// `ApplicationScope.stored`, e.g. `keys,relay`.
    var scopes: String
    var boundUser: String?
    /// The policy's columns, as `PolicyColumns` writes them.
    var models: String?
    var providers: String?
    var expiresAt: Date?
    var requestsPerMinute: Int?
    var tokensPerDay: Int?
    var tokensPerMonth: Int?

    enum CodingKeys: String, CodingKey {
        case name
        case idHash = "id_hash"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
        case scopes
        case boundUser = "bound_user"
        case models
        case providers
        case expiresAt = "expires_at"
        case requestsPerMinute = "rpm"
        case tokensPerDay = "tokens_per_day"
        case tokensPerMonth = "tokens_per_month"
    }

    var policyColumns: PolicyColumns {
        get {
            PolicyColumns(
                models: models, providers: providers, expiresAt: expiresAt, requestsPerMinute: requestsPerMinute, tokensPerDay: tokensPerDay,
                tokensPerMonth: tokensPerMonth)
        }
        set {
            models = newValue.models
            providers = newValue.providers
            expiresAt = newValue.expiresAt
            requestsPerMinute = newValue.requestsPerMinute
            tokensPerDay = newValue.tokensPerDay
            tokensPerMonth = newValue.tokensPerMonth
        }
    }

    enum Columns {
        static let idHash = Column(CodingKeys.idHash)
        static let revokedAt = Column(CodingKeys.revokedAt)
        static let createdAt = Column(CodingKeys.createdAt)
    }
}

/// Facts about the store itself, one row per name.
struct StoreMetaRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "store_meta"

    var name: String
    var value: Data

    /// The id of the master key every sealed value in the store is under.
    static let masterKeyID = "master_key_id"
}

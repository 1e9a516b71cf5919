import ExternalProviderCore
import Foundation
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
struct ProviderKeyRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "provider_key"

    var user: String
    var provider: String
    var apiKey: String
    var apiKeyName: String?
    var organizationKey: String?
    var createdAt: Date
    var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case user
        case provider
        case apiKey = "api_key"
        case apiKeyName = "api_key_name"
        case organizationKey = "organization_key"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    enum Columns {
        static let user = Column(CodingKeys.user)
        static let provider = Column(CodingKeys.provider)
    }

    init(user: UserID, provider: Provider, key: ProviderKey, createdAt: Date, updatedAt: Date) {
        self.user = user.rawValue
        self.provider = provider.rawValue
        self.apiKey = key.apiKey
        self.apiKeyName = key.apiKeyName
        self.organizationKey = key.organizationKey
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    var key: ProviderKey {
        ProviderKey(apiKey: apiKey, apiKeyName: apiKeyName, organizationKey: organizationKey)
    }
}

import Foundation

/// One accepted change, as the audit trail keeps it: who changed what, when, and what the provider said.
/// It names fields, never their values, so nothing in it can recover a key. Rows are only ever appended.
public struct AuditEntry: Sendable, Equatable {
    public let at: Date
    public let action: AuditAction
    /// The user whose account changed; `nil` for changes to the store itself (applications, master key).
    public let user: UserID?
    /// The names of the fields that changed (`AuditField`), sorted.
    public let fields: [AuditField]
    /// The providers whose key changed, in `Provider.allCases` order; none for changes to the store itself.
    public let providers: [Provider]
    /// The application the change came through, by name; for `apps-create` and `apps-revoke`, the
    /// application made or revoked. `nil`: the command line.
    public let application: String?
    /// The request's id (`X-Request-ID`), for changes made over HTTP.
    public let requestID: String?
    /// What the provider said of new credentials when they were stored (`valid`, or `unverified` when
    /// verification is off); `nil` when the change set none.
    public let verification: String?

    public init(
        at: Date, action: AuditAction, user: UserID?, fields: [AuditField], providers: [Provider] = [], application: String?, requestID: String?,
        verification: String?
    ) {
        self.at = at
        self.action = action
        self.user = user
        self.fields = fields
        self.providers = providers
        self.application = application
        self.requestID = requestID
        self.verification = verification
    }

    /// The entry for a change of one user's account from `before` to `after`.
    public static func accountChange(
        _ action: AuditAction, from before: UserAccount?, to after: UserAccount, origin: ChangeOrigin, verification: KeyHealth?, at: Date
    ) -> AuditEntry {
        AuditEntry(
            at: at, action: action, user: after.user, fields: AuditField.changed(from: before, to: after),
            providers: Provider.allCases.filter { before?.keys[$0] != after.keys[$0] },
            application: origin.application, requestID: origin.requestID, verification: verification?.name)
    }

    /// How `providers` is stored: their stored names joined by commas (`open_ai,anthropic`), written out
    /// as `Provider`'s raw values are.
    public static func stored(_ providers: [Provider]) -> String {
        providers.map(\.rawValue).joined(separator: ",")
    }

    /// Names a newer version may have added are kept out rather than failing the read.
    public static func providers(stored: String?) -> [Provider] {
        (stored ?? "").split(separator: ",").compactMap { Provider(rawValue: String($0)) }
    }
}

/// What was done. The raw values are stored: written out, never renamed.
public enum AuditAction: String, Sendable, CaseIterable {
    case create
    case update
    case delete
    case rotateMasterKey = "rotate-master-key"
    case appsCreate = "apps-create"
    case appsRevoke = "apps-revoke"
    case appsUpdate = "apps-update"
}

/// The name of a changed field. The raw values are stored: written out, never renamed.
public enum AuditField: String, Sendable, CaseIterable, Comparable {
    case apiKey = "api_key"
    case apiKeyName = "api_key_name"
    case organizationKey = "organization_key"
    /// A key's scopes, for `apps-create`.
    case scopes
    /// The user an application is bound to, for `apps-create`.
    case boundUser = "bound_user"
    /// An application's limits, for `apps-create` and `apps-update`.
    case models
    case providers
    case expiresAt = "expires_at"
    case requestsPerMinute = "rpm"
    case tokensPerDay = "tokens_per_day"
    case tokensPerMonth = "tokens_per_month"

    public static func < (left: AuditField, right: AuditField) -> Bool { left.rawValue < right.rawValue }

    /// The fields whose value differs between the two accounts, over every provider: a key added or
    /// removed counts as each of its fields that is set.
    static func changed(from before: UserAccount?, to after: UserAccount) -> [AuditField] {
        var fields: Set<AuditField> = []
        for provider in Provider.allCases {
            let old = before?.keys[provider]
            let new = after.keys[provider]
            if !old.map(\.apiKey).isByteIdentical(to: new.map(\.apiKey)) { fields.insert(.apiKey) }
            if !(old?.apiKeyName).isByteIdentical(to: new?.apiKeyName) { fields.insert(.apiKeyName) }
            if !(old?.organizationKey).isByteIdentical(to: new?.organizationKey) { fields.insert(.organizationKey) }
        }
        return fields.sorted()
    }

    /// The stored form: names joined by commas, e.g. `api_key,api_key_name`.
    public static func stored(_ fields: [AuditField]) -> String {
        fields.map(\.rawValue).joined(separator: ",")
    }

    /// Names a newer version may have added are kept out rather than failing the read.
    public static func parse(stored: String) -> [AuditField] {
        stored.split(separator: ",").compactMap { AuditField(rawValue: String($0)) }
    }
}

/// Where a change came from, for its audit entry.
public struct ChangeOrigin: Sendable, Equatable {
    /// The calling application's name, never its id; `nil`: the command line.
    public let application: String?
    public let requestID: String?

    public init(application: String?, requestID: String?) {
        self.application = application
        self.requestID = requestID
    }

    /// An operator's command, run on the store directly.
    public static let commandLine = ChangeOrigin(application: nil, requestID: nil)
}

/// Which audit entries to read.
public struct AuditQuery: Sendable, Equatable {
    public var user: UserID?
    /// Only entries at or after this time.
    public var since: Date?

    public init(user: UserID? = nil, since: Date? = nil) {
        self.user = user
        self.since = since
    }
}

extension AuditEntry {
    /// The entry for a change to the store itself, made from the command line: an application made
    /// (`application` is its name; its scopes are set, and the user it is bound to, if any, is the entry's
    /// user) or revoked, or the master key rotated.
    public static func storeChange(
        _ action: AuditAction, application: String?, boundUser: String? = nil, fields changed: [AuditField] = [], at: Date = Date()
    ) -> AuditEntry {
        let fields: [AuditField] = ((action == .appsCreate ? (boundUser == nil ? [.scopes] : [.boundUser, .scopes]) : []) + changed).sorted()
        return AuditEntry(
            at: at, action: action, user: boundUser.map(UserID.init(trusted:)), fields: fields, application: application, requestID: nil,
            verification: nil)
    }
}

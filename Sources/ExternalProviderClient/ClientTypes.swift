import ExternalProviderAPI
import ExternalProviderCore
import Foundation
import OpenAPIRuntime

/// What the server keeps for one user, as it answers after every operation: never a whole key.
public struct StoredKeys: Sendable, Equatable {
    /// The user's stable id, made on the first create and kept after every key is removed.
    public let globalID: String
    /// The user's OpenAI key, masked; `nil` when there is none.
    public let openAI: MaskedKey?

    /// What a server answered, for tests and previews.
    public init(globalID: String, openAI: MaskedKey?) {
        self.globalID = globalID
        self.openAI = openAI
    }

    init(_ metadata: Components.Schemas.Auth0UserMetadata) async throws(ExternalProviderClientError) {
        let openAI = try metadata.openAI.map { fields throws(ExternalProviderClientError) in
            guard let masked = fields.apiKey else { throw .invalidResponse("the server's answer has an OpenAI key with no api_key") }
            return MaskedKey(maskedAPIKey: masked, name: fields.apiKeyName, organization: fields.organizationKey)
        }
        self.init(globalID: metadata.globalId, openAI: openAI)
    }
}

/// A stored key as the server shows it.
public struct MaskedKey: Sendable, Equatable {
    /// The first 3 characters, `...`, and the last 4 (`****` for a key shorter than 20 characters).
    public let maskedAPIKey: String
    /// The key's name, if it has one.
    public let name: String?
    /// The OpenAI organization the key is used with, if any.
    public let organization: String?

    /// A key as a server would show it, for tests and previews.
    public init(maskedAPIKey: String, name: String?, organization: String?) {
        self.maskedAPIKey = maskedAPIKey
        self.name = name
        self.organization = organization
    }
}

/// A model the user's key may use.
public struct Model: Sendable, Equatable {
    /// The provider's id, e.g. `gpt-4o`, `claude-sonnet-4-5`.
    public let id: String
    /// The name the provider shows; for OpenAI, which gives none, its id.
    public let name: String
    /// When the provider made it available; the epoch when it does not say.
    public let created: Date

    /// A model as a server would list it, for tests and previews.
    public init(id: String, name: String, created: Date) {
        self.id = id
        self.name = name
        self.created = created
    }
}

/// A stored key of one provider, as the keys API shows it: never the key itself.
public struct ProviderKeyStatus: Sendable, Equatable {
    public let provider: Provider
    /// The provider's known start and the last 4 characters (`sk-ant-...Wxyz`).
    public let maskedAPIKey: String
    public let name: String?
    /// The OpenAI organization, for an OpenAI key.
    public let organization: String?
    /// What the provider last said of the key.
    public let health: KeyHealth
    public let updatedAt: Date

    public init(provider: Provider, maskedAPIKey: String, name: String?, organization: String?, health: KeyHealth, updatedAt: Date) {
        self.provider = provider
        self.maskedAPIKey = maskedAPIKey
        self.name = name
        self.organization = organization
        self.health = health
        self.updatedAt = updatedAt
    }

    init(_ stored: Components.Schemas.StoredKey) throws(ExternalProviderClientError) {
        guard let provider = Provider(name: stored.provider) else {
            throw .invalidResponse("the server's answer names a provider this client does not know: \(stored.provider)")
        }
        let health: KeyHealth =
            switch (stored.health, stored.checkedAt) {
            case (.valid, let at?): .valid(checkedAt: at)
            case (.rejected, let at?): .rejected(checkedAt: at, code: stored.healthCode ?? "unknown")
            default: .unverified
            }
        self.init(
            provider: provider, maskedAPIKey: stored.apiKey, name: stored.name, organization: stored.organization, health: health,
            updatedAt: stored.updatedAt)
    }
}

/// Why a call failed: one case per status the server answers, each with the server's own sentence,
/// and the failures before an answer.
public enum ExternalProviderClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400: a field is missing or malformed.
    case badRequest(String)
    /// 401: the provider refused the key (its error code is in the sentence), or the application id is
    /// missing, unknown or revoked.
    case unauthorized(String)
    /// 403: the application may not do this (its scope, or a user it is not bound to), or the server
    /// refused the Host or Origin.
    case forbidden(String)
    /// 404: the user is unknown, or has no key to change.
    case notFound(String)
    /// 409: the user already has a key (use `update`), or it changed while being checked.
    case conflict(String)
    /// 413: the request body is over the server's limit.
    case contentTooLarge(String)
    /// 415: the request was not JSON.
    case unsupportedMediaType(String)
    /// 429: too many failed application ids from this address; wait and try again.
    case tooManyRequests(String)
    /// 500: the server failed; its log says why.
    case internalServerError(String)
    /// 502: the provider could not be asked (refused connection, TLS, its own error). Nothing was stored.
    case badGateway(String)
    /// 503: the server's store is unavailable just now; try again.
    case serviceUnavailable(String)
    /// 504: the provider did not answer in time. Nothing was stored.
    case gatewayTimeout(String)
    /// Any other status.
    case unexpectedStatus(Int, String)
    /// No answer: the server is not running there, or the connection failed.
    case unreachable(String)
    /// An answer that could not be read.
    case invalidResponse(String)
    /// `applicationID(inFile:)` found no id.
    case applicationIDUnreadable(String)

    /// The sentence: the server's, or what went wrong before it could answer.
    public var message: String {
        switch self {
        case .badRequest(let text), .unauthorized(let text), .forbidden(let text), .notFound(let text), .conflict(let text),
            .contentTooLarge(let text), .unsupportedMediaType(let text), .tooManyRequests(let text), .internalServerError(let text),
            .badGateway(let text), .serviceUnavailable(let text), .gatewayTimeout(let text), .unexpectedStatus(_, let text),
            .unreachable(let text), .invalidResponse(let text), .applicationIDUnreadable(let text):
            text
        }
    }

    /// The HTTP status the server answered, if it answered.
    public var status: Int? {
        switch self {
        case .badRequest: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .conflict: 409
        case .contentTooLarge: 413
        case .unsupportedMediaType: 415
        case .tooManyRequests: 429
        case .internalServerError: 500
        case .badGateway: 502
        case .serviceUnavailable: 503
        case .gatewayTimeout: 504
        case .unexpectedStatus(let status, _): status
        case .unreachable, .invalidResponse, .applicationIDUnreadable: nil
        }
    }

    /// The sentence, as `message` says it.
    public var description: String { message }

    /// The case for an answer with `status`, carrying the server's `sentence`.
    init(status: Int, sentence: String) {
        self =
            switch status {
            case 400: .badRequest(sentence)
            case 401: .unauthorized(sentence)
            case 403: .forbidden(sentence)
            case 404: .notFound(sentence)
            case 409: .conflict(sentence)
            case 413: .contentTooLarge(sentence)
            case 415: .unsupportedMediaType(sentence)
            case 429: .tooManyRequests(sentence)
            case 500: .internalServerError(sentence)
            case 502: .badGateway(sentence)
            case 503: .serviceUnavailable(sentence)
            case 504: .gatewayTimeout(sentence)
            default: .unexpectedStatus(status, sentence)
            }
    }

    /// A text/plain body, as far as 64 KiB of it; a missing or unreadable one is an empty sentence.
    static func text(_ body: HTTPBody?) async -> String {
        guard let body else { return "" }
        return (try? await String(collecting: body, upTo: 64 * 1024)) ?? ""
    }
}

/// What an update does to an optional field: `.keep` it, `.clear` it, or `.set(_:)` a new value.
public typealias FieldEdit = ExternalProviderCore.FieldEdit

/// The providers a key may be for.
public typealias Provider = ExternalProviderCore.Provider

/// What a provider last said of a key.
public typealias KeyHealth = ExternalProviderCore.KeyHealth

import ExternalProviderCore
import Foundation

/// How `KeyHealth` is stored, by both stores: its word (`KeyHealth.Word`) in `provider_key.health`, with
/// `health_checked_at` and `health_code` beside it.
package struct KeyHealthColumns {
    package let word: String
    package let checkedAt: Date?
    package let code: String?

    /// `verified_at`: when the provider last accepted the pair, if this health says it did.
    package var verifiedAt: Date? { word == KeyHealth.Word.valid.rawValue ? checkedAt : nil }

    package init(_ health: KeyHealth) {
        switch health {
        case .unverified: (word, checkedAt, code) = (KeyHealth.Word.unverified.rawValue, nil, nil)
        case .valid(let at): (word, checkedAt, code) = (KeyHealth.Word.valid.rawValue, at, nil)
        case .rejected(let at, let code): (word, checkedAt, self.code) = (KeyHealth.Word.rejected.rawValue, at, code)
        }
    }

    package static func health(word: String, checkedAt: Date?, code: String?) throws -> KeyHealth {
        switch (KeyHealth.Word(rawValue: word), checkedAt) {
        case (.unverified?, _): return .unverified
        case (.valid?, let at?): return .valid(checkedAt: at)
        case (.rejected?, let at?): return .rejected(checkedAt: at, code: code ?? "unknown")
        default: throw Fault(.store, "provider_key row has an unknown health '\(word)'")
        }
    }
}

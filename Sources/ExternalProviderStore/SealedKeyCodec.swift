import ExternalProviderCore
import Foundation

/// Seals a provider key's secret fields for storage and opens them again, for every store. Each sealed
/// value is bound to its user, its provider and the name of its field, so a value copied onto another
/// row or field does not open. Those names are part of every stored value: they are written out here,
/// never taken from a column or a Codable key, so renaming a column cannot make stored keys unreadable.
package struct SealedKeyCodec: Sendable {
    /// The secret fields of a stored key.
    enum Field {
        case apiKey
        case organizationKey

        /// The name bound into the seal. Fixed forever: changing one makes every value sealed under it
        /// unreadable (`SealedKeyCodecTests` holds values sealed by the first version).
        var sealedName: String {
            switch self {
            case .apiKey: "api_key"
            case .organizationKey: "organization_key"
            }
        }
    }

    /// A key's secret fields as stored; its name is not secret and is stored as it is.
    package struct Sealed: Sendable, Equatable {
        package var apiKey: Data
        package var organizationKey: Data?

        package init(apiKey: Data, organizationKey: Data?) {
            self.apiKey = apiKey
            self.organizationKey = organizationKey
        }
    }

    let masterKey: MasterKey

    package init(masterKey: MasterKey) {
        self.masterKey = masterKey
    }

    package func seal(_ key: ProviderKey, user: String, provider: String) throws -> Sealed {
        Sealed(
            apiKey: try masterKey.seal(key.apiKey, for: context(.apiKey, user: user, provider: provider)),
            organizationKey: try key.organizationKey.map {
                try masterKey.seal($0, for: context(.organizationKey, user: user, provider: provider))
            })
    }

    /// The key, or a `StoreFault` naming whose key did not open and why, never any of its value.
    package func open(_ sealed: Sealed, name: String?, user: String, provider: String) throws -> ProviderKey {
        do {
            return ProviderKey(
                apiKey: try masterKey.open(sealed.apiKey, for: context(.apiKey, user: user, provider: provider)),
                apiKeyName: name,
                organizationKey: try sealed.organizationKey.map {
                    try masterKey.open($0, for: context(.organizationKey, user: user, provider: provider))
                })
        } catch {
            throw Fault(.store, "the \(provider) key of user '\(user)' did not open: \(error)")
        }
    }

    private func context(_ field: Field, user: String, provider: String) -> SealContext {
        SealContext(user: user, provider: provider, field: field.sealedName)
    }
}

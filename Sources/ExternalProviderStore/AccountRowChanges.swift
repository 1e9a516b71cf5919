import ExternalProviderCore

/// What one account change writes, key by key: the rule both stores follow. Only what differs is
/// written, so a change that changes nothing touches nothing on disk. A key whose (key, organization)
/// pair is new starts over with the health the change gives it; one whose pair stays keeps its own.
package struct AccountRowChanges: Equatable {
    package enum KeyRow: Equatable {
        /// A key the account did not have.
        case insert(Provider, ProviderKey)
        /// A key the account had, changed; `newCredentials` when its (key, organization) pair changed.
        case update(Provider, ProviderKey, newCredentials: Bool)
        /// A key the account had, removed.
        case delete(Provider)
    }

    /// Whether the account itself is new.
    package let createsAccount: Bool
    /// The key rows to write, in `Provider.allCases` order.
    package let keyRows: [KeyRow]

    package init(from old: UserAccount?, to new: UserAccount) {
        createsAccount = old == nil
        var rows: [KeyRow] = []
        for provider in Provider.allCases {
            let before = old?.keys[provider]
            let after = new.keys[provider]
            switch (before, after) {
            case (nil, let key?):
                rows.append(.insert(provider, key))
            case (let previous?, let key?) where previous != key:
                rows.append(.update(provider, key, newCredentials: !previous.hasSameCredentials(as: key)))
            case (_?, nil):
                rows.append(.delete(provider))
            default:
                continue
            }
        }
        keyRows = rows
    }

    /// Nothing to write: the change leaves the account as it was.
    package var isEmpty: Bool { !createsAccount && keyRows.isEmpty }
}

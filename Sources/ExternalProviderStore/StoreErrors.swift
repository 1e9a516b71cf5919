import ExternalProviderCore
import Foundation

extension Fault {
    /// A store opened with a master key other than the one its values are sealed under.
    package static func sealedUnderOtherKey(recorded: Data, given: MasterKey) -> Fault {
        Fault(
            .store,
            "the store is sealed under master key \(MasterKey.displayID(recorded)), but the key given is \(given.id); start with the key it was sealed under (--master-key-file or \(MasterKeySource.environmentVariable))"
        )
    }
}

/// An error of a store's database itself (SQLite's, PostgreSQL's), which each store module marks as one,
/// so that the server counts it as a store fault without knowing either database.
public protocol DatabaseFailure: Error {}

extension Error {
    /// Whether this error is a fault of the store: its own, or its database's.
    public var isStoreFault: Bool {
        (self as? Fault)?.kind == .store || self is any DatabaseFailure
    }
}

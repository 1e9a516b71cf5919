import Foundation
import GRDB

/// A fault in the store itself: its detail is for the log, never for a response.
public struct StoreFault: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension StoreFault {
    /// A store opened with a master key other than the one its values are sealed under.
    package static func sealedUnderOtherKey(recorded: Data, given: MasterKey) -> StoreFault {
        StoreFault(
            "the store is sealed under master key \(MasterKey.displayID(recorded)), but the key given is \(given.id); start with the key it was sealed under (--master-key-file or EXTERNAL_PROVIDER_MASTER_KEY)"
        )
    }
}

extension StoreFault {
    /// Whether `error` came from the embedded store: its own faults, or SQLite's.
    public static func isFromEmbeddedStore(_ error: any Error) -> Bool {
        error is StoreFault || error is DatabaseError
    }
}

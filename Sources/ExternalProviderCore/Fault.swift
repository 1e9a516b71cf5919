/// Something that went wrong, in one sentence that says what failed and, where it can, what to do, and
/// that carries no request data and no secret: safe to log, and for a command to print as its one line.
/// It is classified by its kind, never by its words.
public struct Fault: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The store itself failed: a value that does not open, a newer schema, another master key, a row
        /// it cannot read. A request meeting one is answered 500 and counted as a store fault.
        case store
        /// A command cannot start or go on: a setting, a data dir, a port, a database out of reach.
        case start
        /// A rule the code itself must keep was broken: answered 500, with the detail in the log.
        case bug
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

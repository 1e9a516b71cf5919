/// A fault in the store itself: its detail is for the log, never for a response.
public struct StoreFault: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Swift's `String ==` says canonically equivalent strings are equal ("é" as one scalar or as "e" and a
/// combining accent; "K" and the Kelvin sign), but SQLite, PostgreSQL and the provider compare bytes. A
/// comparison that says "unchanged" when the bytes differ would answer 200 and store nothing, so every
/// identifier, secret and stored value is compared through here, by its UTF-8 bytes.
extension String {
    @inlinable
    public func isByteIdentical(to other: String) -> Bool {
        utf8.elementsEqual(other.utf8)
    }

    /// Hashes the UTF-8 bytes, consistently with `isByteIdentical`.
    @inlinable
    public func hashBytes(into hasher: inout Hasher) {
        var copy = self
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension Optional where Wrapped == String {
    @inlinable
    public func isByteIdentical(to other: String?) -> Bool {
        switch (self, other) {
        case (nil, nil): true
        case (let left?, let right?): left.isByteIdentical(to: right)
        default: false
        }
    }
}

/// A string that is equal to another, and hashes alike, only when its UTF-8 bytes are the same: for
/// dictionary keys and sets of identifiers.
public struct ExactText: Hashable, Sendable {
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public static func == (left: ExactText, right: ExactText) -> Bool {
        left.value.isByteIdentical(to: right.value)
    }

    public func hash(into hasher: inout Hasher) {
        value.hashBytes(into: &hasher)
    }
}

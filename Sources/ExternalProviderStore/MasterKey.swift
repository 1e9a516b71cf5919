import Crypto
import Foundation

/// The 256-bit key every stored secret is sealed under. Its id (a hash, not the key) names it in every
/// sealed value and in the store, so a store opened with the wrong key is refused rather than misread.
public struct MasterKey: Sendable {
    public static let byteCount = 32

    let symmetricKey: SymmetricKey
    /// 8 bytes of SHA-256 over a label and the key: safe to print, and enough to tell keys apart.
    package let idBytes: Data

    public var id: String { Self.displayID(idBytes) }

    /// How a key id is shown: in messages, in `SealError`, and by `recordedMasterKeyID`.
    package static func displayID(_ idBytes: Data) -> String {
        idBytes.map { String(format: "%02x", $0) }.joined()
    }

    public init(bytes: Data) throws(MasterKeyError) {
        guard bytes.count == Self.byteCount else { throw .wrongLength(bytes.count) }
        symmetricKey = SymmetricKey(data: bytes)
        var hasher = SHA256()
        hasher.update(data: Data("external-provider master key id".utf8))
        hasher.update(data: bytes)
        idBytes = Data(hasher.finalize().prefix(8))
    }

    /// The base64 form used in key files and `EXTERNAL_PROVIDER_MASTER_KEY`; surrounding whitespace is ignored.
    public init(base64: String) throws(MasterKeyError) {
        guard let bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw .notBase64 }
        try self.init(bytes: bytes)
    }

    public static func generate() -> MasterKey {
        try! MasterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    public var base64: String {
        symmetricKey.withUnsafeBytes { Data($0).base64EncodedString() }
    }
}

public enum MasterKeyError: Error, Equatable, CustomStringConvertible {
    case notBase64
    case wrongLength(Int)

    public var description: String {
        switch self {
        case .notBase64: "a master key must be base64 (32 random bytes, e.g. from `openssl rand -base64 32`)"
        case .wrongLength(let count): "a master key must be 32 bytes once base64-decoded, not \(count)"
        }
    }
}

/// What a sealed value belongs to. It is bound into the seal, so a value copied onto another user's row
/// or another field fails to open.
public struct SealContext: Sendable, Equatable {
    public let user: String
    public let provider: String
    public let field: String

    public init(user: String, provider: String, field: String) {
        self.user = user
        self.provider = provider
        self.field = field
    }
}

/// Why a sealed value did not open. No case carries any of the value.
public enum SealError: Error, Equatable, CustomStringConvertible {
    case malformed
    case unsupportedFormat(UInt8)
    case sealedUnderOtherKey(String)
    case authenticationFailed

    public var description: String {
        switch self {
        case .malformed: "sealed value is too short to be one"
        case .unsupportedFormat(let version): "sealed value has unknown format version \(version)"
        case .sealedUnderOtherKey(let id): "sealed value is under master key \(id), not the current one"
        case .authenticationFailed: "sealed value failed authentication: altered, or moved from another row or field"
        }
    }
}

/// AES-256-GCM with a fresh random nonce per value. Layout: format version (1 byte), key id (8),
/// nonce (12), ciphertext, tag (16).
extension MasterKey {
    static let formatVersion: UInt8 = 1
    private static let headerCount = 1 + 8

    public func seal(_ plaintext: String, for context: SealContext) throws -> Data {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: symmetricKey, nonce: AES.GCM.Nonce(), authenticating: associatedData(context))
        guard let combined = box.combined else { throw SealError.malformed }
        return Data([Self.formatVersion]) + idBytes + combined
    }

    public func open(_ sealed: Data, for context: SealContext) throws(SealError) -> String {
        let sealed = Data(sealed)
        guard sealed.count >= Self.headerCount + 12 + 16 else { throw .malformed }
        guard sealed[0] == Self.formatVersion else { throw .unsupportedFormat(sealed[0]) }
        let keyID = sealed.subdata(in: 1..<Self.headerCount)
        guard keyID == idBytes else { throw .sealedUnderOtherKey(Self.displayID(keyID)) }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.subdata(in: Self.headerCount..<sealed.count))
            let plaintext = try AES.GCM.open(box, using: symmetricKey, authenticating: associatedData(context))
            guard let text = String(data: plaintext, encoding: .utf8) else { throw SealError.malformed }
            return text
        } catch {
            throw .authenticationFailed
        }
    }

    /// Length-prefixed, so no two different contexts serialise to the same bytes.
    private func associatedData(_ context: SealContext) -> Data {
        var data = Data("external-provider sealed v\(Self.formatVersion)".utf8)
        for part in [Data(context.user.utf8), Data(context.provider.utf8), Data(context.field.utf8), idBytes] {
            withUnsafeBytes(of: UInt32(part.count).bigEndian) { data.append(contentsOf: $0) }
            data.append(part)
        }
        return data
    }
}

import Crypto
import Foundation

/// The applications allowed to call the API. An id is shown once, when made; the store keeps only its
/// SHA-256, so a copy of the data dir yields no usable id.
public protocol ApplicationRegistry: Sendable {
    /// Makes an application and returns its new id. Throws `ApplicationError.nameTaken` for a used name.
    func registerApplication(named name: String) async throws -> String
    func applications() async throws -> [RegisteredApplication]
    /// Returns false if there is no active application of that name.
    func revokeApplication(named name: String) async throws -> Bool
    func isActiveApplication(id: String) async throws -> Bool
}

public struct RegisteredApplication: Sendable, Equatable {
    public let name: String
    public let createdAt: Date
    public let revokedAt: Date?
}

public enum ApplicationError: Error, Equatable, CustomStringConvertible {
    case invalidName
    case nameTaken(String)

    public var description: String {
        switch self {
        case .invalidName: "an application name is 1 to 64 letters, digits, '.', '_' or '-'"
        case .nameTaken(let name): "an application named '\(name)' already exists; pick another name or revoke it first"
        }
    }
}

enum ApplicationID {
    /// 128 random bits, base64url without padding: 22 characters, safe in a header and a URL.
    static func generate() -> String {
        let bytes = SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }
        return bytes.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ id: String) -> Data {
        Data(SHA256.hash(data: Data(id.utf8)))
    }

    static func validate(name: String) throws(ApplicationError) {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy(allowed.contains) else { throw .invalidName }
    }
}

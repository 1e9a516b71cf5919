import AsyncHTTPClient
import ExternalProviderCore
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// Why a call to a provider got no answer, sorted by the error's type, for the key check, the model list
/// and the relay alike. Each case is a sentence fragment that names no value of the request.
enum UpstreamFailure: Equatable, Sendable {
    /// The answer did not begin in time.
    case timedOut
    /// No connection within the connect timeout.
    case connectTimedOut
    case connectionRefused
    /// The TLS handshake or the TLS session failed: a bad certificate, a protocol mismatch.
    case tls
    /// The host could not be resolved or no connection could be made to any of its addresses.
    case unreachable
    /// Anything else, by the error's type name.
    case other(String)

    init(_ error: any Error) {
        switch error {
        case let error as HTTPClientError where error == .readTimeout || error == .deadlineExceeded:
            self = .timedOut
        case let error as HTTPClientError where error == .connectTimeout:
            self = .connectTimedOut
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            self = .connectionRefused
        case is NIOSSLError, is BoringSSLError:
            self = .tls
        case let error as NIOConnectionError:
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            self = refused ? .connectionRefused : .unreachable
        default:
            self = .other(String(describing: type(of: error)))
        }
    }

    /// Whether `error` says the connection was closed under the request before any answer came: what a
    /// pooled connection the upstream closed while it sat idle gives. Connect failures are not among
    /// these: they are no stale connection.
    static func isClosedConnection(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPClientError: error == .remoteConnectionClosed
        case let error as ChannelError: error == .ioOnClosedChannel || error == .alreadyClosed || error == .outputClosed || error == .eof
        case let error as IOError: error.errnoCode == ECONNRESET || error.errnoCode == EPIPE
        default: false
        }
    }

    /// What went wrong with a call to `provider`, as a clause: "… so nothing was stored: <reason>."
    func reason(_ provider: Provider) -> String {
        let name = provider.displayName
        return switch self {
        case .timedOut: "\(name) did not begin to answer in time"
        case .connectTimedOut: "no connection to \(name) within the connect timeout"
        case .connectionRefused: "the connection to \(name) was refused"
        case .tls: "the TLS connection to \(name) failed"
        case .unreachable: "no connection to \(name) could be made"
        case .other(let type): "the request to \(name) failed (\(type))"
        }
    }
}

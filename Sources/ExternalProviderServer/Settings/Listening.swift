import ExternalProviderCore
import Foundation
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc

// `bind` alone would name Hummingbird's; the system call has a different name per C library.
private let systemBind = Glibc.bind
private let streamSocket = Int32(SOCK_STREAM.rawValue)
#elseif canImport(Darwin)
import Darwin

private let systemBind = Darwin.bind
private let streamSocket = SOCK_STREAM
#endif

/// Whether `serve` can listen where it is told to, and the one line that says why not.
public enum Listening {
    /// Binds the address and lets it go, so a start that cannot listen fails before it makes a data dir,
    /// a master key or an application; `nil` if the address is free.
    public static func probe(host: String, port: Int) async -> Fault? {
        guard port != 0 else { return nil }
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await channel.close()
            return nil
        } catch {
            return failure(error, host: host, port: port) ?? Fault(.start, "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// The one line for a listener that could not bind, or `nil` if `error` is something else.
    public static func failure(_ error: any Error, host: String, port: Int) -> Fault? {
        guard let error = error as? IOError else { return nil }
        let suggestion = "use \(ServeSettings.port.declaration.option) \(freePortSuggestion(host: host) ?? 39300)"
        switch error.errnoCode {
        case EADDRINUSE:
            return Fault(.start, "cannot listen on \(host):\(port): the address is already in use; stop the other server or \(suggestion)")
        case EACCES:
            return Fault(.start, "cannot listen on \(host):\(port): permission denied (ports below 1024 need root); \(suggestion)")
        case EADDRNOTAVAIL:
            return Fault(.start, "cannot listen on \(host):\(port): this machine has no such address; use \(ServeSettings.host.declaration.option) 127.0.0.1")
        default:
            return Fault(.start, "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// A port that was free a moment ago, so the advice in the message is one that works.
    private static func freePortSuggestion(host: String) -> Int? {
        let fd = socket(AF_INET, streamSocket, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemBind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

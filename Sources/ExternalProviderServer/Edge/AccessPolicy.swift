import Foundation
import Synchronization

/// Which Host names and browser Origins may reach the server. The defaults let only local, non-browser
/// clients in: a web page, or a DNS-rebinding page that calls itself localhost, gets 403.
public final class AccessPolicy: Sendable {
    /// This machine's own names: accepted only with the port the server is bound to, so a page that
    /// reaches it through another local port or service is still refused.
    private let localNames: Set<String>
    /// Names the operator allowed without a port (`--allow-host keys.internal`): on any port or none,
    /// since a proxy in front sends its own (`Host: keys.internal`, or `keys.internal:8443`).
    private let allowedNames: Set<String>
    /// Names the operator allowed with a port (`--allow-host proxy.example:443`): exactly so.
    private let hostsWithPort: Set<String>
    private let origins: Set<String>
    private let port: Mutex<Int>

    public init(boundHost: String, port: Int, allowedHosts: [String] = [], allowedOrigins: [String] = []) {
        localNames = ["localhost", "127.0.0.1", "[::1]", Self.bracketed(boundHost.lowercased())]
        var names: Set<String> = []
        var withPort: Set<String> = []
        for host in allowedHosts.map({ $0.lowercased() }) {
            if Self.split(host).port != nil { withPort.insert(host) } else { names.insert(Self.bracketed(host)) }
        }
        allowedNames = names
        hostsWithPort = withPort
        origins = Set(allowedOrigins.map(Self.normalizedOrigin))
        self.port = Mutex(port)
    }

    /// The port actually bound, for a server started on port 0.
    func listening(on port: Int) {
        self.port.withLock { $0 = port }
    }

    func allowsHost(_ header: String) -> Bool {
        let value = header.lowercased()
        if hostsWithPort.contains(value) { return true }
        let (name, explicitPort) = Self.split(value)
        if allowedNames.contains(name) { return explicitPort != -1 }
        return localNames.contains(name) && (explicitPort ?? 80) == port.withLock { $0 }
    }

    func allowsOrigin(_ header: String) -> Bool {
        origins.contains(Self.normalizedOrigin(header))
    }

    static func normalizedOrigin(_ origin: String) -> String {
        var value = origin.trimmingCharacters(in: .whitespaces).lowercased()
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }

    private static func bracketed(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }

    /// Splits `name:port`, `[v6]:port`, `name` or `[v6]`.
    static func split(_ value: String) -> (name: String, port: Int?) {
        if value.hasPrefix("["), let close = value.firstIndex(of: "]") {
            let name = String(value[...close])
            let rest = value[value.index(after: close)...]
            return (name, rest.hasPrefix(":") ? Int(rest.dropFirst()) ?? -1 : nil)
        }
        guard let colon = value.lastIndex(of: ":") else { return (value, nil) }
        return (String(value[..<colon]), Int(value[value.index(after: colon)...]) ?? -1)
    }
}

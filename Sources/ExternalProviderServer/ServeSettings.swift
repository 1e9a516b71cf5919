import Foundation
import Logging
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// `serve`'s settings: each comes from its flag, else its environment variable, else its default.
public struct ServeSettings: AppArguments, Equatable {
    public static let defaultHost = "127.0.0.1"
    /// The port every PiecesOS SDK uses by default.
    public static let defaultPort = 1000

    public var host: String
    public var port: Int
    public var dataDirectory: String
    public var logLevel: Logger.Level
    public var masterKeyFile: String?
    public var allowedHosts: [String]
    public var allowedOrigins: [String]
    public var verifyKeys: Bool
    public var openAIBaseURL: String
    public var verifyTimeout: Double

    public static let defaultVerifyTimeout = 10.0

    public init(
        host: String, port: Int, dataDirectory: String, logLevel: Logger.Level,
        masterKeyFile: String? = nil, allowedHosts: [String] = [], allowedOrigins: [String] = [],
        verifyKeys: Bool = true, openAIBaseURL: String = OpenAIKeyVerifier.defaultBaseURL, verifyTimeout: Double = defaultVerifyTimeout
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.logLevel = logLevel
        self.masterKeyFile = masterKeyFile
        self.allowedHosts = allowedHosts
        self.allowedOrigins = allowedOrigins
        self.verifyKeys = verifyKeys
        self.openAIBaseURL = openAIBaseURL
        self.verifyTimeout = verifyTimeout
    }

    public init(
        host: String?,
        port: Int?,
        dataDirectory: String?,
        logLevel: String?,
        masterKeyFile: String? = nil,
        allowedHosts: [String] = [],
        allowedOrigins: [String] = [],
        verifyKeys: Bool? = nil,
        openAIBaseURL: String? = nil,
        verifyTimeout: Double? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.host = host ?? environment["EXTERNAL_PROVIDER_HOST"] ?? Self.defaultHost
        if let port {
            self.port = port
        } else if let raw = environment["EXTERNAL_PROVIDER_PORT"] {
            guard let port = Int(raw) else { throw ServeFailure("EXTERNAL_PROVIDER_PORT must be a number, not '\(raw)'") }
            self.port = port
        } else {
            self.port = Self.defaultPort
        }
        guard (0...65535).contains(self.port) else { throw ServeFailure("the port must be between 0 and 65535, not \(self.port)") }
        self.dataDirectory = dataDirectory ?? environment["EXTERNAL_PROVIDER_DATA_DIR"] ?? Self.defaultDataDirectory(environment)
        let level = logLevel ?? environment["EXTERNAL_PROVIDER_LOG_LEVEL"] ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ServeFailure("unknown log level '\(level)'; use one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.logLevel = parsed
        self.masterKeyFile = masterKeyFile ?? environment["EXTERNAL_PROVIDER_MASTER_KEY_FILE"]
        self.allowedHosts = allowedHosts.isEmpty ? Self.list(environment["EXTERNAL_PROVIDER_ALLOW_HOST"]) : allowedHosts
        self.allowedOrigins = allowedOrigins.isEmpty ? Self.list(environment["EXTERNAL_PROVIDER_ALLOW_ORIGIN"]) : allowedOrigins

        if let verifyKeys {
            self.verifyKeys = verifyKeys
        } else if let raw = environment["EXTERNAL_PROVIDER_VERIFY_KEYS"] {
            switch raw.lowercased() {
            case "1", "true", "yes", "on": self.verifyKeys = true
            case "0", "false", "no", "off": self.verifyKeys = false
            default: throw ServeFailure("EXTERNAL_PROVIDER_VERIFY_KEYS must be true or false, not '\(raw)'")
            }
        } else {
            self.verifyKeys = true
        }
        let baseURL = openAIBaseURL ?? environment["EXTERNAL_PROVIDER_OPENAI_BASE_URL"] ?? OpenAIKeyVerifier.defaultBaseURL
        guard let url = URL(string: baseURL), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw ServeFailure("the OpenAI base URL must be an http or https URL such as \(OpenAIKeyVerifier.defaultBaseURL), not '\(baseURL)'")
        }
        self.openAIBaseURL = baseURL
        if let verifyTimeout {
            self.verifyTimeout = verifyTimeout
        } else if let raw = environment["EXTERNAL_PROVIDER_VERIFY_TIMEOUT"] {
            guard let seconds = Double(raw) else { throw ServeFailure("EXTERNAL_PROVIDER_VERIFY_TIMEOUT must be a number of seconds, not '\(raw)'") }
            self.verifyTimeout = seconds
        } else {
            self.verifyTimeout = Self.defaultVerifyTimeout
        }
        guard self.verifyTimeout > 0, self.verifyTimeout <= 600 else {
            throw ServeFailure("the verify timeout must be more than 0 and at most 600 seconds, not \(self.verifyTimeout)")
        }
    }

    /// A comma-separated environment variable, as the repeatable flags' counterpart.
    private static func list(_ value: String?) -> [String] {
        (value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `$XDG_DATA_HOME/external-provider`, else `~/.local/share/external-provider`.
    public static func defaultDataDirectory(_ environment: [String: String]) -> String {
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            return (xdg as NSString).appendingPathComponent("external-provider")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".local/share/external-provider")
    }
}

extension ServeFailure {
    /// Binds the address and lets it go, so a start that cannot listen fails before it makes a data dir,
    /// a master key or an application; `nil` if the address is free.
    public static func probe(host: String, port: Int) async -> ServeFailure? {
        guard port != 0 else { return nil }
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await channel.close()
            return nil
        } catch {
            return bind(error, host: host, port: port) ?? ServeFailure("cannot listen on \(host):\(port): \(error)")
        }
    }

    /// The one line for a listener that could not bind, or `nil` if `error` is something else.
    public static func bind(_ error: any Error, host: String, port: Int) -> ServeFailure? {
        guard let error = error as? IOError else { return nil }
        let suggestion = "use --port \(freePortSuggestion(host: host) ?? 39300)"
        switch error.errnoCode {
        case EADDRINUSE:
            return ServeFailure("cannot listen on \(host):\(port): the address is already in use; stop the other server or \(suggestion)")
        case EACCES:
            return ServeFailure("cannot listen on \(host):\(port): permission denied (ports below 1024 need root); \(suggestion)")
        case EADDRNOTAVAIL:
            return ServeFailure("cannot listen on \(host):\(port): this machine has no such address; use --host 127.0.0.1")
        default:
            return ServeFailure("cannot listen on \(host):\(port): \(error)")
        }
    }

    /// A port that was free a moment ago, so the advice in the message is one that works.
    private static func freePortSuggestion(host: String) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
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

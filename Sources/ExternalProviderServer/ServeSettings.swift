import ExternalProviderPostgres
import Foundation
import Logging
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

/// `serve`'s settings: each comes from its flag, else its environment variable, else its default (`Setting`).
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
    public var maxConnections: Int
    public var requestTimeout: Double
    public var relayMaxBody: Int
    public var relayTimeout: Double
    /// Seconds after which a stored key is checked again; 0: never.
    public var recheckInterval: Double
    /// The shared PostgreSQL store, instead of the data dir's SQLite one.
    public var databaseURL: DatabaseURL?
    /// Whether `serve` applies missing migrations to PostgreSQL (the data dir's store always migrates).
    public var migrate: Bool
    /// `text` or `json` lines on stderr.
    public var logFormat: LogFormat
    /// Seconds requests in flight may take to finish after SIGTERM or SIGINT before they are cut.
    public var shutdownTimeout: Double
    /// Whether `GET /metrics` is served.
    public var metrics: Bool

    public static let defaultVerifyTimeout = 10.0
    /// Enough for any team's clients, yet far below the descriptor limit the server raises itself to.
    public static let defaultMaxConnections = 2048
    /// A request's head and body must both have arrived within this many seconds of its start.
    public static let defaultRequestTimeout = 60.0
    /// A file or audio upload to OpenAI fits in this.
    public static let defaultRelayMaxBody = 32 * 1024 * 1024
    /// A reasoning model may take minutes before its first token.
    public static let defaultRelayTimeout = 600.0
    public static let defaultRecheckInterval = 86400.0
    public static let defaultShutdownTimeout = 10.0

    public init(
        host: String, port: Int, dataDirectory: String, logLevel: Logger.Level,
        masterKeyFile: String? = nil, allowedHosts: [String] = [], allowedOrigins: [String] = [],
        verifyKeys: Bool = true, openAIBaseURL: String = OpenAIKeyVerifier.defaultBaseURL, verifyTimeout: Double = defaultVerifyTimeout,
        maxConnections: Int = defaultMaxConnections, requestTimeout: Double = defaultRequestTimeout,
        relayMaxBody: Int = defaultRelayMaxBody, relayTimeout: Double = defaultRelayTimeout,
        recheckInterval: Double = defaultRecheckInterval, databaseURL: DatabaseURL? = nil, migrate: Bool = true,
        logFormat: LogFormat = .text, shutdownTimeout: Double = defaultShutdownTimeout, metrics: Bool = true
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
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
        self.relayMaxBody = relayMaxBody
        self.relayTimeout = relayTimeout
        self.recheckInterval = recheckInterval
        self.databaseURL = databaseURL
        self.migrate = migrate
        self.logFormat = logFormat
        self.shutdownTimeout = shutdownTimeout
        self.metrics = metrics
    }

    /// Each setting from its flag, else its environment variable, else its default (`Setting`).
    public init(_ settings: Settings) throws {
        self.host = try settings.value(.host, default: Self.defaultHost, expecting: "a host") { $0 }
        self.port = try settings.value(.port, default: Self.defaultPort, expecting: "a number") { Int($0) }
        guard (0...65535).contains(self.port) else { throw ServeFailure("the port must be between 0 and 65535, not \(self.port)") }
        self.dataDirectory = settings.dataDirectory
        let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
        self.logLevel = try settings.value(.logLevel, default: .info, expecting: "one of \(levels)") { Logger.Level(rawValue: $0) }
        self.masterKeyFile = settings.text(.masterKeyFile)
        self.allowedHosts = settings.list(.allowHost)
        self.allowedOrigins = settings.list(.allowOrigin)

        self.verifyKeys = try settings.bool(.verifyKeys, default: true)
        let baseURL = try settings.value(.openAIBaseURL, default: OpenAIKeyVerifier.defaultBaseURL, expecting: "a URL") { $0 }
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), let urlHost = url.host else {
            throw ServeFailure("the OpenAI base URL must be an http or https URL such as \(OpenAIKeyVerifier.defaultBaseURL), not '\(baseURL)'")
        }
        // Keys travel to this URL: in clear text only as far as this machine's own loopback.
        guard scheme == "https" || Self.isLoopback(urlHost) else {
            throw ServeFailure("the OpenAI base URL must use https, since keys are sent to it; plain http is allowed only to a loopback host such as 127.0.0.1, not '\(urlHost)'")
        }
        self.openAIBaseURL = baseURL
        self.verifyTimeout = try settings.value(.verifyTimeout, default: Self.defaultVerifyTimeout, expecting: "a number of seconds") { Double($0) }
        guard self.verifyTimeout > 0, self.verifyTimeout <= 600 else {
            throw ServeFailure("the verify timeout must be more than 0 and at most 600 seconds, not \(self.verifyTimeout)")
        }
        self.maxConnections = try settings.value(.maxConnections, default: Self.defaultMaxConnections, expecting: "a number") { Int($0) }
        guard self.maxConnections >= 1 else {
            throw ServeFailure("--max-connections must be at least 1, not \(self.maxConnections)")
        }
        self.requestTimeout = try settings.value(.requestTimeout, default: Self.defaultRequestTimeout, expecting: "a number of seconds") { Double($0) }
        guard self.requestTimeout > 0, self.requestTimeout <= 3600 else {
            throw ServeFailure("the request timeout must be more than 0 and at most 3600 seconds, not \(self.requestTimeout)")
        }
        self.relayMaxBody = try settings.value(.relayMaxBody, default: Self.defaultRelayMaxBody, expecting: "a number of bytes") { Int($0) }
        guard self.relayMaxBody >= 0 else { throw ServeFailure("--relay-max-body must be a number of bytes, not \(self.relayMaxBody)") }
        self.relayTimeout = try settings.value(.relayTimeout, default: Self.defaultRelayTimeout, expecting: "a number of seconds") { Double($0) }
        guard self.relayTimeout > 0, self.relayTimeout <= 86400 else {
            throw ServeFailure("the relay timeout must be more than 0 and at most 86400 seconds, not \(self.relayTimeout)")
        }
        self.recheckInterval = try settings.value(
            .recheckInterval, default: Self.defaultRecheckInterval,
            expecting: "a duration such as 24h, 90m or 3600 (seconds), or 0 for never") { Self.duration($0).flatMap { $0 >= 0 ? $0 : nil } }
        if case .postgres(let url) = try StoreLocation(settings) {
            self.databaseURL = url
        }
        self.migrate = try settings.bool(.migrate, default: true)
        self.logFormat = try settings.value(.logFormat, default: .text, expecting: "text or json") { LogFormat(rawValue: $0) }
        self.shutdownTimeout = try settings.value(.shutdownTimeout, default: Self.defaultShutdownTimeout, expecting: "a number of seconds") { Double($0) }
        guard self.shutdownTimeout >= 0, self.shutdownTimeout <= 3600 else {
            throw ServeFailure("--shutdown-timeout must be 0 to 3600 seconds, not \(self.shutdownTimeout)")
        }
        self.metrics = try settings.bool(.metrics, default: true)
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }

    /// `90`, `90s`, `30m`, `24h` or `2d`, in seconds.
    static func duration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let last = text.last else { return nil }
        if let unit = units[last] { return Double(text.dropLast()).map { $0 * unit } }
        return Double(text)
    }

    /// `localhost`, 127.0.0.0/8 or ::1.
    static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if name == "localhost" || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
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

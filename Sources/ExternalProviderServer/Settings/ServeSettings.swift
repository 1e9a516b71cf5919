import ExternalProviderCore
import ExternalProviderSetup
import Foundation
import Logging

/// `serve`'s settings, each declared once: its flag, variable, default and help, and how its text reads.
/// `buildApplication` reads them where it uses them; `serve --help` lists them from here.
public enum ServeSettings {
    public static let host = Setting<String>("host", "Address to listen on.", default: "127.0.0.1", expecting: "a host") { $0 }
    public static let port = Setting<Int>(
        "port", "Port to listen on.", default: 1000, shown: "1000, the SDKs' default", expecting: "a number from 0 to 65535"
    ) { text in Int(text).flatMap { (0...65535).contains($0) ? $0 : nil } }
    public static let logLevel = Setting<Logger.Level>(
        "log-level", "trace, debug, info, notice, warning, error or critical.", default: .info,
        expecting: "one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))", parse: Logger.Level.init(rawValue:))
    public static let logFormat = Setting<LogFormat>(
        "log-format", "text, or json: one JSON object per line.", default: .text, expecting: "text or json", parse: LogFormat.init(rawValue:))
    public static let allowOrigin = Setting<[String]>.list(
        "allow-origin", "A web page origin (https://app.example.com) allowed to call the API; repeatable, or comma-separated in the variable.",
        shown: "none")
    public static let allowHost = Setting<[String]>.list(
        "allow-host", "Another Host name (or name:port) the server answers to, e.g. behind a proxy; repeatable, or comma-separated in the variable.")
    public static let verifyKeys = Setting<Bool>.onOff("verify-keys", "Check each new key with its provider before storing it.", default: true)
    public static let verifyTimeout = Setting<Double>(
        "verify-timeout", "Seconds a provider's check may take to connect, and to answer.", default: 10, shown: "10",
        expecting: "a number of seconds, more than 0 and at most 600", parse: seconds(in: 0.001...600))
    public static let maxConnections = Setting<Int>(
        "max-connections", "Connections open at once; more are closed as they arrive.", default: 2048, expecting: "a number, at least 1"
    ) { text in Int(text).flatMap { $0 >= 1 ? $0 : nil } }
    public static let requestTimeout = Setting<Double>(
        "request-timeout", "Seconds within which a request's head and body must arrive, or its connection is closed.", default: 60,
        shown: "60", expecting: "a number of seconds, more than 0 and at most 3600", parse: seconds(in: 0.001...3600))
    public static let relayMaxBody = Setting<Int>(
        "relay-max-body", "Bytes a relayed request may carry (a file or audio upload).", default: 32 * 1024 * 1024,
        shown: "33554432 (32 MiB)", expecting: "a number of bytes"
    ) { text in Int(text).flatMap { $0 >= 0 ? $0 : nil } }
    public static let relayTimeout = Setting<Double>(
        "relay-timeout", "Seconds the relay waits for a provider's answer to begin.", default: 600, shown: "600",
        expecting: "a number of seconds, more than 0 and at most 86400", parse: seconds(in: 0.001...86400))
    public static let recheckInterval = Setting<Double>(
        "recheck-interval", "How often each stored key is checked again with its provider: 24h, 90m, 3600 (seconds), or 0 for never.",
        default: 86400, shown: "24h", expecting: "a duration such as 24h, 90m or 3600 (seconds), or 0 for never"
    ) { text in Settings.duration(text).flatMap { $0 >= 0 ? $0 : nil } }
    public static let migrate = Setting<Bool>.onOff(
        "migrate",
        "With --database-url: apply missing migrations at start (under an advisory lock), or with --no-migrate refuse an outdated database.",
        default: true)
    public static let shutdownTimeout = Setting<Double>(
        "shutdown-timeout", "Seconds requests in flight may take to finish after SIGTERM or SIGINT; relayed streams still open then are cut.",
        default: 10, shown: "10", expecting: "a number of seconds from 0 to 3600", parse: seconds(in: 0...3600))
    public static let metrics = Setting<Bool>.onOff("metrics", "Serve GET /metrics (Prometheus text).", default: true)
    public static let usageRetention = Setting<Double>(
        "usage-retention", "How long the usage ledger keeps an entry: 90d, 12h, or seconds.", default: 90 * 86400, shown: "90d",
        expecting: "a duration such as 90d, 12h or 3600 (seconds), more than 0"
    ) { text in Settings.duration(text).flatMap { $0 > 0 && $0.isFinite ? $0 : nil } }
    public static let usageQueue = Setting<Int>(
        "usage-queue", "Usage ledger entries held in memory while the store cannot take them; past this, new entries are dropped and counted.",
        default: 100_000, shown: "100000", expecting: "a number, at least 1"
    ) { text in Int(text).flatMap { $0 >= 1 ? $0 : nil } }

    /// Each provider's base URL, named from the provider table: `--anthropic-base-url`
    /// (`EXTERNAL_PROVIDER_ANTHROPIC_BASE_URL`). Keys are sent there, so it must be `https`, or `http` to
    /// a loopback host.
    public static let baseURLs: [Provider: Setting<String>] = Dictionary(
        uniqueKeysWithValues: Provider.allCases.map { provider in
            let profile = provider.profile
            let setting = Setting<String>(
                "\(profile.name)-base-url",
                "Where \(profile.displayName) keys are checked and its requests relayed: its API, a proxy or a compatible gateway.",
                default: profile.defaultBaseURL,
                expecting: "an https URL such as \(profile.defaultBaseURL) (keys are sent to it), or an http URL to a loopback host such as 127.0.0.1",
                parse: keyDestination)
            return (provider, setting)
        })

    /// Every setting `serve` takes, in the order its help lists them.
    public static var all: [SettingDeclaration] {
        StoreSettings.all.filter { $0 != StoreSettings.applicationID.declaration }
            + [
                host.declaration, port.declaration, logLevel.declaration, logFormat.declaration, allowOrigin.declaration,
                allowHost.declaration, verifyKeys.declaration,
            ]
            + Provider.allCases.map { baseURLs[$0]!.declaration }
            + [
                verifyTimeout.declaration, maxConnections.declaration, requestTimeout.declaration, relayMaxBody.declaration,
                relayTimeout.declaration, recheckInterval.declaration, migrate.declaration, shutdownTimeout.declaration,
                metrics.declaration, usageRetention.declaration, usageQueue.declaration,
            ]
    }

    static func seconds(in range: ClosedRange<Double>) -> @Sendable (String) -> Double? {
        { text in Double(text).flatMap { range.contains($0) ? $0 : nil } }
    }

    /// An http or https URL with a host, https unless the host is this machine's loopback: keys travel
    /// to it, in clear text only as far as the machine's own loopback. Without a trailing slash.
    static func keyDestination(_ text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), let host = url.host,
            scheme == "https" || isLoopback(host)
        else { return nil }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    /// `localhost`, 127.0.0.0/8 or ::1.
    static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if name == "localhost" || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

import Configuration
import ExternalProviderStore
import Foundation

/// One setting of the commands, declared once: its flag, the environment variable it falls back to, and
/// the words and default its flag's help shows. `Settings` gives its value: the flag, else the variable,
/// else the default.
///
/// The variable is the one swift-configuration's `EnvironmentVariablesProvider` reads for the setting's
/// key: `data-dir` is the key `externalProvider.dataDir`, read from `EXTERNAL_PROVIDER_DATA_DIR`. A test
/// holds the name shown in the help to the one the provider reads.
public struct Setting: Hashable, Sendable {
    /// The flag's long name, without its dashes: `data-dir`.
    public let flag: String
    let key: [String]
    let summary: String
    let defaultText: String?
    /// A value never shown in an error, nor reported by the configuration reader.
    let isSecret: Bool
    /// A `--name/--no-name` flag, whose variable says `true` or `false`.
    let isSwitch: Bool

    init(
        _ flag: String, _ summary: String, default defaultText: String? = nil, key: [String]? = nil, isSecret: Bool = false,
        isSwitch: Bool = false
    ) {
        self.flag = flag
        let words = flag.split(separator: "-").map(String.init)
        self.key = key ?? ["externalProvider", ([words[0]] + words.dropFirst().map(\.capitalized)).joined()]
        self.summary = summary
        self.defaultText = defaultText
        self.isSecret = isSecret
        self.isSwitch = isSwitch
    }

    /// The environment variable: the key's words in capitals, joined by underscores.
    public var variable: String {
        key.map { component in
            var name = ""
            for character in component {
                if character.isUppercase, name.last?.isLowercase == true { name += "_" }
                name.append(character)
            }
            return name.uppercased()
        }.joined(separator: "_")
    }

    /// The flag's help: what it sets, its variable, and its default.
    public var help: String {
        "\(summary) Env: \(variable)\(isSwitch ? " (true or false)" : "").\(defaultText.map { " Default: \($0)." } ?? "")"
    }

    /// For an error: `--port (EXTERNAL_PROVIDER_PORT)`.
    var names: String { "--\(flag) (\(variable))" }
}

extension Setting {
    // Where the store is: every command that opens it.
    public static let dataDir = Setting(
        "data-dir", "Where the store lives, created with mode 0700.",
        default: "$XDG_DATA_HOME/external-provider, else ~/.local/share/external-provider")
    public static let masterKeyFile = Setting(
        "master-key-file",
        "File holding the master key (base64 of 32 bytes); or give the key itself in \(MasterKeySource.environmentVariable).",
        default: "<data-dir>/master.key, made on first start; with --database-url it must be given")
    public static let databaseURL = Setting(
        "database-url",
        "Keep keys in this PostgreSQL database (postgres://user:password@host:5432/db?sslmode=require), shared by several instances, instead of the data dir.",
        key: ["database", "url"], isSecret: true)

    // serve
    public static let host = Setting("host", "Address to listen on.", default: ServeSettings.defaultHost)
    public static let port = Setting("port", "Port to listen on.", default: "\(ServeSettings.defaultPort), the SDKs' default")
    public static let logLevel = Setting("log-level", "trace, debug, info, notice, warning, error or critical.", default: "info")
    public static let logFormat = Setting("log-format", "text, or json: one JSON object per line.", default: "text")
    public static let allowOrigin = Setting(
        "allow-origin", "A web page origin (https://app.example.com) allowed to call the API; repeatable, or comma-separated in the variable.",
        default: "none")
    public static let allowHost = Setting(
        "allow-host", "Another Host name (or name:port) the server answers to, e.g. behind a proxy; repeatable, or comma-separated in the variable.")
    public static let verifyKeys = Setting("verify-keys", "Check each new key with OpenAI before storing it.", default: "on", isSwitch: true)
    public static let openAIBaseURL = Setting(
        "openai-base-url", "Where keys are checked and requests relayed: OpenAI, a proxy or a compatible gateway.",
        default: OpenAIKeyVerifier.defaultBaseURL)
    public static let verifyTimeout = Setting(
        "verify-timeout", "Seconds the check may take to connect, and to answer.", default: "\(Int(ServeSettings.defaultVerifyTimeout))")
    public static let maxConnections = Setting(
        "max-connections", "Connections open at once; more are closed as they arrive.", default: "\(ServeSettings.defaultMaxConnections)")
    public static let requestTimeout = Setting(
        "request-timeout", "Seconds within which a request's head and body must arrive, or its connection is closed.",
        default: "\(Int(ServeSettings.defaultRequestTimeout))")
    public static let relayMaxBody = Setting(
        "relay-max-body", "Bytes a request relayed to OpenAI may carry (a file or audio upload).",
        default: "\(ServeSettings.defaultRelayMaxBody) (32 MiB)")
    public static let relayTimeout = Setting(
        "relay-timeout", "Seconds the relay waits for OpenAI's answer to begin.", default: "\(Int(ServeSettings.defaultRelayTimeout))")
    public static let recheckInterval = Setting(
        "recheck-interval", "How often each stored key is checked again with OpenAI: 24h, 90m, 3600 (seconds), or 0 for never.",
        default: "24h")
    public static let migrate = Setting(
        "migrate",
        "With --database-url: apply missing migrations at start (under an advisory lock), or with --no-migrate refuse an outdated database.",
        default: "on", isSwitch: true)
    public static let shutdownTimeout = Setting(
        "shutdown-timeout", "Seconds requests in flight may take to finish after SIGTERM or SIGINT; relayed streams still open then are cut.",
        default: "\(Int(ServeSettings.defaultShutdownTimeout))")
    public static let metrics = Setting("metrics", "Serve GET /metrics (Prometheus text).", default: "on", isSwitch: true)

    // The commands that call a running server.
    /// The id itself, so only in the environment: a flag's value is in every process listing.
    public static let applicationID = Setting("app-id", "The application id.", isSecret: true)

    /// Every setting, for the test that holds their variables to the configuration reader's.
    public static let all: [Setting] = [
        dataDir, masterKeyFile, databaseURL, host, port, logLevel, logFormat, allowOrigin, allowHost, verifyKeys, openAIBaseURL,
        verifyTimeout, maxConnections, requestTimeout, relayMaxBody, relayTimeout, recheckInterval, migrate, shutdownTimeout,
        metrics, applicationID,
    ]
}

/// The values of the settings a command was given: each from its flag, else its environment variable
/// (through swift-configuration's providers, in that order), else its default.
public struct Settings: Sendable {
    private let reader: ConfigReader
    /// For defaults made from the environment: the data dir under `$XDG_DATA_HOME` or `$HOME`.
    public let environment: [String: String]

    /// `flags`: the text of each flag given; `nil` for one not given. `lists`: repeatable flags.
    public init(
        flags: [Setting: String?] = [:], lists: [Setting: [String]] = [:],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        var given: [AbsoluteConfigKey: ConfigValue] = [:]
        for case let (setting, text?) in flags {
            given[AbsoluteConfigKey(setting.key)] = ConfigValue(.string(text), isSecret: setting.isSecret)
        }
        for (setting, list) in lists where !list.isEmpty {
            given[AbsoluteConfigKey(setting.key)] = ConfigValue(.stringArray(list), isSecret: setting.isSecret)
        }
        let secrets = Set(Setting.all.filter(\.isSecret).map(\.variable) + [MasterKeySource.environmentVariable])
        reader = ConfigReader(providers: [
            InMemoryProvider(name: "flags", values: given),
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secrets)),
        ])
        self.environment = environment
    }

    /// The setting's text from its flag, else its variable; `nil` when neither gives it.
    public func text(_ setting: Setting) -> String? {
        reader.string(forKey: ConfigKey(setting.key), isSecret: setting.isSecret)
    }

    /// A repeatable setting: its flags, else its variable's comma-separated items.
    public func list(_ setting: Setting) -> [String] {
        (reader.stringArray(forKey: ConfigKey(setting.key), isSecret: setting.isSecret) ?? [])
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The setting's value; `defaultValue` when neither flag nor variable gives it; a one-line failure
    /// that names the flag and the variable when its text is not `expecting`.
    public func value<Value>(
        _ setting: Setting, default defaultValue: Value, expecting: String, _ parse: (String) -> Value?
    ) throws -> Value {
        guard let text = text(setting) else { return defaultValue }
        guard let value = parse(text) else {
            throw ServeFailure("\(setting.names) must be \(expecting)\(setting.isSecret ? "" : ", not '\(text)'")")
        }
        return value
    }

    public func bool(_ setting: Setting, default defaultValue: Bool) throws -> Bool {
        try value(setting, default: defaultValue, expecting: "true or false", ServeSettings.boolean)
    }

    /// `--data-dir`, else `EXTERNAL_PROVIDER_DATA_DIR`, else `$XDG_DATA_HOME/external-provider`, else
    /// `~/.local/share/external-provider`.
    public var dataDirectory: String {
        text(.dataDir) ?? ServeSettings.defaultDataDirectory(environment)
    }
}

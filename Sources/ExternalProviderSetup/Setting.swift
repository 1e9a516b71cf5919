import Configuration
import ExternalProviderCore
import ExternalProviderStore
import Foundation

/// What every setting is, whatever its type: its flag, the environment variable it falls back to, and
/// what its help says. The command line is parsed, the help written and the variables read from these.
///
/// The variable is the one swift-configuration's `EnvironmentVariablesProvider` reads for the setting's
/// key: `data-dir` is the key `externalProvider.dataDir`, read from `EXTERNAL_PROVIDER_DATA_DIR`.
public struct SettingDeclaration: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// `--flag VALUE` or `--flag=VALUE`.
        case value
        /// `--flag` or `--no-flag`; its variable says `true` or `false`.
        case onOff
        /// `--flag VALUE`, repeatable; its variable holds the values comma-separated.
        case list
    }

    /// The flag's long name, without its dashes: `data-dir`.
    public let flag: String
    let key: [String]
    let summary: String
    let defaultText: String?
    public let kind: Kind
    /// A value never shown in an error, nor reported by the configuration reader.
    let isSecret: Bool

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

    /// `--data-dir`, as a sentence names it.
    public var option: String { "--\(flag)" }

    /// For an error: `--port (EXTERNAL_PROVIDER_PORT)`.
    public var names: String { "\(option) (\(variable))" }

    /// The flag's help: what it sets, its variable, and its default.
    public var help: String {
        "\(summary) Env: \(variable)\(kind == .onOff ? " (true or false)" : "").\(defaultText.map { " Default: \($0)." } ?? "")"
    }

    /// How the help writes the flag: `--port <port>`, `--[no-]metrics`, `--allow-host <allow-host> ...`.
    var usage: String {
        switch kind {
        case .value: "\(option) <\(flag)>"
        case .onOff: "--[no-]\(flag)"
        case .list: "\(option) <\(flag)> ..."
        }
    }
}

/// One setting, declared once: its flag, its variable, its default and its help, and how its text reads
/// as a value. Adding a setting is one of these, and the code that uses its value: `Settings.value(_:)`
/// reads it from its flag, else its variable, else its default, and refuses a malformed text in one line
/// that names the flag and the variable.
public struct Setting<Value: Sendable>: Sendable {
    public let declaration: SettingDeclaration
    let defaultValue: @Sendable (_ environment: [String: String]) -> Value
    let expecting: String
    let parse: @Sendable (String) -> Value?

    /// A setting whose default does not depend on the environment. `shown`: the default as the help
    /// says it, when its value alone would not say enough.
    public init(
        _ flag: String, _ summary: String, default defaultValue: Value, shown: String? = nil, expecting: String,
        key: [String]? = nil, isSecret: Bool = false, parse: @escaping @Sendable (String) -> Value?
    ) {
        self.init(
            flag, summary, kind: .value, default: { _ in defaultValue }, shown: shown ?? "\(defaultValue)", expecting: expecting, key: key,
            isSecret: isSecret, parse: parse)
    }

    init(
        _ flag: String, _ summary: String, kind: SettingDeclaration.Kind, default defaultValue: @escaping @Sendable ([String: String]) -> Value,
        shown: String?, expecting: String, key: [String]? = nil, isSecret: Bool = false, parse: @escaping @Sendable (String) -> Value?
    ) {
        let words = flag.split(separator: "-").map(String.init)
        declaration = SettingDeclaration(
            flag: flag, key: key ?? ["externalProvider", ([words[0]] + words.dropFirst().map(\.capitalized)).joined()], summary: summary,
            defaultText: shown, kind: kind, isSecret: isSecret)
        self.defaultValue = defaultValue
        self.expecting = expecting
        self.parse = parse
    }
}

extension Setting where Value == Bool {
    /// `--flag` / `--no-flag`, or its variable's `true` or `false`.
    public static func onOff(_ flag: String, _ summary: String, default defaultValue: Bool) -> Setting {
        Setting(
            flag, summary, kind: .onOff, default: { _ in defaultValue }, shown: defaultValue ? "on" : "off", expecting: "true or false",
            parse: Settings.boolean)
    }
}

extension Setting where Value == [String] {
    /// A repeatable flag, or its variable's comma-separated values; none by default.
    public static func list(_ flag: String, _ summary: String, shown: String? = nil) -> Setting {
        Setting(flag, summary, kind: .list, default: { _ in [] }, shown: shown, expecting: "a list", parse: { [$0] })
    }
}

extension Setting where Value == String? {
    /// A text with no default; `shown` says what happens without it.
    public static func text(_ flag: String, _ summary: String, shown: String? = nil, key: [String]? = nil, isSecret: Bool = false) -> Setting {
        Setting(flag, summary, kind: .value, default: { _ in nil }, shown: shown, expecting: "a text", key: key, isSecret: isSecret, parse: { $0 })
    }
}

/// The settings a command was given: each from its flag, else its environment variable (through
/// swift-configuration's providers, in that order), else its default.
public struct Settings: Sendable {
    private let reader: ConfigReader
    private let given: [SettingDeclaration: [String]]
    /// For defaults made from the environment: the data dir under `$XDG_DATA_HOME` or `$HOME`.
    public let environment: [String: String]

    /// `given`: the texts each flag was given (several for a repeatable one).
    public init(given: [SettingDeclaration: [String]] = [:], environment: [String: String] = ProcessInfo.processInfo.environment) {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (declaration, texts) in given where !texts.isEmpty {
            let content: ConfigContent = declaration.kind == .list ? .stringArray(texts) : .string(texts[texts.count - 1])
            values[AbsoluteConfigKey(declaration.key)] = ConfigValue(content, isSecret: declaration.isSecret)
        }
        let secrets = Set(StoreSettings.all.filter(\.isSecret).map(\.variable) + [MasterKeySource.environmentVariable])
        reader = ConfigReader(providers: [
            InMemoryProvider(name: "flags", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secrets)),
        ])
        self.environment = environment
        self.given = given
    }

    /// Reads `--flag VALUE`, `--flag=VALUE`, `--flag` and `--no-flag` for the `known` settings; anything
    /// else is refused in one line.
    public init(
        arguments: [String], known: [SettingDeclaration], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(Fault) {
        var given: [SettingDeclaration: [String]] = [:]
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            guard argument.hasPrefix("--") else { throw Fault(.start, "unexpected argument '\(argument)'; see --help") }
            let (name, inline) = argument.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init).splitFirst
            if let declaration = known.first(where: { $0.flag == name }) {
                switch declaration.kind {
                case .onOff:
                    guard inline == nil else { throw Fault(.start, "\(declaration.option) takes no value; use \(declaration.option) or --no-\(name)") }
                    given[declaration] = ["true"]
                case .value, .list:
                    guard let value = inline ?? remaining.popFirst() else { throw Fault(.start, "\(declaration.option) needs a value") }
                    given[declaration, default: []].append(value)
                }
            } else if name.hasPrefix("no-"), let declaration = known.first(where: { $0.flag == name.dropFirst(3) && $0.kind == .onOff }) {
                given[declaration] = ["false"]
            } else {
                throw Fault(.start, "unknown option '--\(name)'; see --help for the settings")
            }
        }
        self.init(given: given, environment: environment)
    }

    /// The text its flag was given, if it was given as a flag.
    public func flagText(_ declaration: SettingDeclaration) -> String? {
        given[declaration]?.last
    }

    /// The setting's text from its flag, else its variable; `nil` when neither gives it.
    public func text(_ declaration: SettingDeclaration) -> String? {
        reader.string(forKey: ConfigKey(declaration.key), isSecret: declaration.isSecret)
    }

    /// The setting's value: its flag's, else its variable's, else its default. A text that does not read
    /// as a value is refused in one line that names the flag and the variable, and the text unless it is
    /// a secret.
    public func value<Value>(_ setting: Setting<Value>) throws(Fault) -> Value {
        let declaration = setting.declaration
        guard let text = text(declaration) else { return setting.defaultValue(environment) }
        guard let value = setting.parse(text) else {
            throw Fault(.start, "\(declaration.names) must be \(setting.expecting)\(declaration.isSecret ? "" : ", not '\(text)'")")
        }
        return value
    }

    /// A repeatable setting: its flags, else its variable's comma-separated items.
    public func value(_ setting: Setting<[String]>) -> [String] {
        let declaration = setting.declaration
        return (reader.stringArray(forKey: ConfigKey(declaration.key), isSecret: declaration.isSecret) ?? [])
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `true`, `1`, `yes` or `on`; `false`, `0`, `no` or `off`.
    public static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }

    /// `90`, `90s`, `30m`, `24h` or `2d`, in seconds.
    public static func duration(_ text: String) -> Double? {
        TimeText.duration(text)
    }

    /// The help of `settings`, one per paragraph, for a command's discussion.
    public static func help(_ settings: [SettingDeclaration]) -> String {
        "Each setting comes from its flag, else its environment variable, else its default.\n\n"
            + settings.map { "\($0.usage)\n    \($0.help)" }.joined(separator: "\n")
    }
}

extension Array where Element == String {
    /// The first element and the second, if any.
    fileprivate var splitFirst: (String, String?) { (self[0], count > 1 ? self[1] : nil) }
}

import ExternalProviderCore
import ExternalProviderSetup
import Foundation
import Logging
import NIOCore
import Testing

@testable import ExternalProviderServer

@Suite("serve's settings and start-up failures")
struct ServeSettingsTests {
    /// `serve`'s settings from these arguments and this environment.
    func settings(_ arguments: [String] = [], environment: [String: String] = [:]) throws -> Settings {
        try Settings(arguments: arguments, known: ServeSettings.all, environment: environment)
    }

    @Test("defaults: 127.0.0.1, port 1000, XDG data dir, info, every provider's own API")
    func defaults() throws {
        let given = try settings(environment: ["XDG_DATA_HOME": "/xdg", "HOME": "/home/ada"])
        #expect(try given.value(ServeSettings.host) == "127.0.0.1" && given.value(ServeSettings.port) == 1000)
        #expect(try given.value(StoreSettings.dataDir) == "/xdg/external-provider" && given.value(ServeSettings.logLevel) == .info)
        #expect(try settings(environment: ["HOME": "/home/ada"]).value(StoreSettings.dataDir) == "/home/ada/.local/share/external-provider")
        #expect(try Provider.allCases.map { try given.value(ServeSettings.baseURLs[$0]!) } == [
            "https://api.openai.com", "https://api.anthropic.com", "https://generativelanguage.googleapis.com", "https://api.mistral.ai/v1",
            "https://api.groq.com/openai/v1",
        ])
        #expect(try given.value(ServeSettings.verifyKeys) && given.value(ServeSettings.verifyTimeout) == 10)
        #expect(try given.value(ServeSettings.maxConnections) == 2048 && given.value(ServeSettings.requestTimeout) == 60)
        #expect(try given.value(ServeSettings.recheckInterval) == 86400 && given.value(ServeSettings.metrics))
        #expect(given.value(ServeSettings.allowOrigin).isEmpty && given.value(ServeSettings.allowHost).isEmpty)
    }

    @Test("environment variables apply when no flag is given; flags win, as --flag value or --flag=value")
    func environmentAndFlags() throws {
        let environment = [
            "EXTERNAL_PROVIDER_HOST": "0.0.0.0", "EXTERNAL_PROVIDER_PORT": "39300", "EXTERNAL_PROVIDER_DATA_DIR": "/data",
            "EXTERNAL_PROVIDER_LOG_LEVEL": "debug",
        ]
        let fromEnvironment = try settings(environment: environment)
        #expect(try fromEnvironment.value(ServeSettings.host) == "0.0.0.0" && fromEnvironment.value(ServeSettings.port) == 39300)
        #expect(try fromEnvironment.value(StoreSettings.dataDir) == "/data" && fromEnvironment.value(ServeSettings.logLevel) == .debug)
        let fromFlags = try settings(["--host", "::1", "--port=4000", "--data-dir", "/flags", "--log-level", "error"], environment: environment)
        #expect(try fromFlags.value(ServeSettings.host) == "::1" && fromFlags.value(ServeSettings.port) == 4000)
        #expect(try fromFlags.value(StoreSettings.dataDir) == "/flags" && fromFlags.value(ServeSettings.logLevel) == .error)
    }

    @Test("repeatable settings and switches: flags, else the variable's comma-separated values; --no-flag turns one off")
    func listsAndSwitches() throws {
        let environment = [
            "EXTERNAL_PROVIDER_ALLOW_HOST": "a.internal, b.internal:8443", "EXTERNAL_PROVIDER_ALLOW_ORIGIN": "https://app.example.com",
            "EXTERNAL_PROVIDER_VERIFY_KEYS": "false",
        ]
        let fromEnvironment = try settings(environment: environment)
        #expect(fromEnvironment.value(ServeSettings.allowHost) == ["a.internal", "b.internal:8443"])
        #expect(fromEnvironment.value(ServeSettings.allowOrigin) == ["https://app.example.com"])
        #expect(try !fromEnvironment.value(ServeSettings.verifyKeys))
        let fromFlags = try settings(["--allow-host", "c", "--allow-host", "d:1", "--verify-keys", "--no-metrics"], environment: environment)
        #expect(fromFlags.value(ServeSettings.allowHost) == ["c", "d:1"])
        #expect(try fromFlags.value(ServeSettings.verifyKeys) && !fromFlags.value(ServeSettings.metrics))
    }

    @Test("each provider's base URL is a setting named from the provider table; keys go over http only to loopback")
    func baseURLs() throws {
        for provider in Provider.allCases {
            let declaration = ServeSettings.baseURLs[provider]!.declaration
            #expect(declaration.flag == "\(provider.name)-base-url")
            #expect(declaration.variable == "EXTERNAL_PROVIDER_\(provider.name.uppercased())_BASE_URL")
            #expect(ServeSettings.all.contains(declaration))
        }
        let anthropic = ServeSettings.baseURLs[.anthropic]!
        for refused in ["http://gateway:8080", "http://api.openai.com", "http://10.0.0.1", "http://127.0.0.1.nip.io", "http://[::2]:80", "ftp://x"] {
            #expect(throws: Fault.self, "\(refused)") { try settings(["--anthropic-base-url", refused]).value(anthropic) }
        }
        for allowed in ["https://gateway:8080", "http://127.0.0.1:9", "http://127.10.0.1", "http://localhost:8080", "http://[::1]:8080"] {
            #expect(try settings(["--anthropic-base-url", allowed]).value(anthropic) == allowed)
        }
        #expect(try settings(["--anthropic-base-url", "https://gateway/"]).value(anthropic) == "https://gateway")
    }

    @Test("numbers and durations are read and bounded")
    func numbers() throws {
        for (text, seconds) in [("24h", 86400.0), ("90m", 5400), ("45s", 45), ("2d", 172_800), ("3600", 3600), ("0", 0)] {
            #expect(try settings(["--recheck-interval", text]).value(ServeSettings.recheckInterval) == seconds)
        }
        #expect(try settings(environment: ["EXTERNAL_PROVIDER_RECHECK_INTERVAL": "30m"]).value(ServeSettings.recheckInterval) == 1800)
        for bad in ["soon", "-1h", "h", ""] {
            #expect(throws: Fault.self) { try settings(["--recheck-interval", bad]).value(ServeSettings.recheckInterval) }
        }
        #expect(try settings(environment: ["EXTERNAL_PROVIDER_MAX_CONNECTIONS": "10"]).value(ServeSettings.maxConnections) == 10)
        #expect(try settings(["--request-timeout", "2.5"]).value(ServeSettings.requestTimeout) == 2.5)
        #expect(throws: Fault.self) { try settings(["--max-connections", "0"]).value(ServeSettings.maxConnections) }
        #expect(throws: Fault.self) { try settings(["--request-timeout", "0"]).value(ServeSettings.requestTimeout) }
        #expect(throws: Fault.self) { try settings(["--verify-timeout", "0"]).value(ServeSettings.verifyTimeout) }
        #expect(throws: Fault.self) { try settings(["--port", "70000"]).value(ServeSettings.port) }
        #expect(throws: Fault.self) { try settings(["--log-level", "loud"]).value(ServeSettings.logLevel) }
    }

    @Test("each setting's variable, as its help names it, is the one the configuration reader reads; a flag wins over it")
    func variables() throws {
        #expect(ServeSettings.port.declaration.variable == "EXTERNAL_PROVIDER_PORT")
        #expect(ServeSettings.baseURLs[.openAI]!.declaration.variable == "EXTERNAL_PROVIDER_OPENAI_BASE_URL")
        #expect(StoreSettings.databaseURL.declaration.variable == "DATABASE_URL")
        #expect(StoreSettings.applicationID.declaration.variable == "EXTERNAL_PROVIDER_APP_ID")
        for declaration in ServeSettings.all + StoreSettings.all {
            #expect(Settings(environment: [declaration.variable: "from-env"]).text(declaration) == "from-env", "\(declaration.variable)")
            if declaration.kind != .list {
                #expect(Settings(given: [declaration: ["from-flag"]], environment: [declaration.variable: "from-env"]).text(declaration) == "from-flag")
            }
            #expect(Settings(environment: [:]).text(declaration) == nil)
            #expect(declaration.help.contains("Env: \(declaration.variable)"))
        }
        let all = ServeSettings.all + [StoreSettings.applicationID.declaration]
        #expect(Set(all.map(\.variable)).count == all.count && Set(all.map(\.flag)).count == all.count)
    }

    @Test("a malformed value names the flag and the variable; a secret one is not echoed; an unknown flag is refused")
    func malformedMessages() throws {
        #expect(throws: Fault(.start, "--port (EXTERNAL_PROVIDER_PORT) must be a number from 0 to 65535, not 'http'")) {
            try settings(environment: ["EXTERNAL_PROVIDER_PORT": "http"]).value(ServeSettings.port)
        }
        let short = Setting<String>("app-id", "The id.", default: "", expecting: "short", isSecret: true) { $0.count < 3 ? $0 : nil }
        #expect(throws: Fault(.start, "--app-id (EXTERNAL_PROVIDER_APP_ID) must be short")) {
            try Settings(environment: ["EXTERNAL_PROVIDER_APP_ID": "id-0123"]).value(short)
        }
        #expect(throws: Fault(.start, "unknown option '--prot'; see --help for the settings")) { try settings(["--prot", "1"]) }
        #expect(throws: Fault(.start, "--port needs a value")) { try settings(["--port"]) }
        #expect(throws: Fault(.start, "--metrics takes no value; use --metrics or --no-metrics")) { try settings(["--metrics=yes"]) }
        #expect(throws: Fault.self) { try settings(["--no-port"]) }
        #expect(throws: Fault.self) { try settings(["stray"]) }
    }

    @Test("bind failures say what happened and suggest a port that was free")
    func bindFailures() throws {
        let inUse = try #require(Listening.failure(IOError(errnoCode: EADDRINUSE, reason: "bind"), host: "127.0.0.1", port: 1000))
        #expect(inUse.description.contains("127.0.0.1:1000"))
        #expect(inUse.description.contains("already in use"))
        #expect(inUse.description.range(of: #"use --port \d+"#, options: .regularExpression) != nil)
        let denied = try #require(Listening.failure(IOError(errnoCode: EACCES, reason: "bind"), host: "127.0.0.1", port: 80))
        #expect(denied.description.contains("permission denied"))
        #expect(denied.description.range(of: #"use --port \d+"#, options: .regularExpression) != nil)
        #expect(!inUse.description.contains("\n"))
        #expect(Listening.failure(Fault(.store, "x"), host: "h", port: 1) == nil)
    }
}

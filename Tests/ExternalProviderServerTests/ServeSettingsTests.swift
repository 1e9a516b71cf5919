import Logging
import NIOCore
import ExternalProviderStore
import Foundation
import Testing

@testable import ExternalProviderServer

@Suite("serve's settings and start-up failures")
struct ServeSettingsTests {
    @Test("defaults: 127.0.0.1, port 1000, XDG data dir, info")
    func defaults() throws {
        let settings = try ServeSettings(Settings(environment: ["XDG_DATA_HOME": "/xdg", "HOME": "/home/ada"]))
        #expect(settings == ServeSettings(host: "127.0.0.1", port: 1000, dataDirectory: "/xdg/external-provider", logLevel: .info))
        let withoutXDG = try ServeSettings(Settings(environment: ["HOME": "/home/ada"]))
        #expect(withoutXDG.dataDirectory == "/home/ada/.local/share/external-provider")
    }

    @Test("environment variables apply when no flag is given; flags win")
    func environmentAndFlags() throws {
        let environment = [
            "EXTERNAL_PROVIDER_HOST": "0.0.0.0", "EXTERNAL_PROVIDER_PORT": "39300",
            "EXTERNAL_PROVIDER_DATA_DIR": "/data", "EXTERNAL_PROVIDER_LOG_LEVEL": "debug",
        ]
        let fromEnvironment = try ServeSettings(Settings(environment: environment))
        #expect(fromEnvironment == ServeSettings(host: "0.0.0.0", port: 39300, dataDirectory: "/data", logLevel: .debug))
        let fromFlags = try ServeSettings(Settings(flags: [.host: "::1", .port: "4000", .dataDir: "/flags", .logLevel: "error"], environment: environment))
        #expect(fromFlags == ServeSettings(host: "::1", port: 4000, dataDirectory: "/flags", logLevel: .error))
    }

    @Test("allowed hosts and origins and the master key file come from flags or the environment")
    func securitySettings() throws {
        let environment = [
            "EXTERNAL_PROVIDER_ALLOW_HOST": "a.internal, b.internal:8443", "EXTERNAL_PROVIDER_ALLOW_ORIGIN": "https://app.example.com",
            "EXTERNAL_PROVIDER_MASTER_KEY_FILE": "/keys/master",
        ]
        let fromEnvironment = try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: environment))
        #expect(fromEnvironment.allowedHosts == ["a.internal", "b.internal:8443"])
        #expect(fromEnvironment.allowedOrigins == ["https://app.example.com"])
        #expect(fromEnvironment.masterKeyFile == "/keys/master")
        let fromFlags = try ServeSettings(
            Settings(flags: [.dataDir: "/d", .masterKeyFile: "/flag"], lists: [.allowHost: ["c"], .allowOrigin: []], environment: environment))
        #expect(fromFlags.allowedHosts == ["c"])
        #expect(fromFlags.masterKeyFile == "/flag")
        #expect(try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: [:])).allowedOrigins.isEmpty)
    }

    @Test("verification settings: on by default, switched by flag or environment, validated")
    func verificationSettings() throws {
        let defaults = try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: [:]))
        #expect(defaults.verifyKeys && defaults.openAIBaseURL == "https://api.openai.com" && defaults.verifyTimeout == 10)
        let environment = ["EXTERNAL_PROVIDER_VERIFY_KEYS": "false", "EXTERNAL_PROVIDER_OPENAI_BASE_URL": "https://gateway:8080", "EXTERNAL_PROVIDER_VERIFY_TIMEOUT": "2.5"]
        let fromEnvironment = try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: environment))
        #expect(!fromEnvironment.verifyKeys && fromEnvironment.openAIBaseURL == "https://gateway:8080" && fromEnvironment.verifyTimeout == 2.5)
        #expect(try ServeSettings(Settings(flags: [.dataDir: "/d", .verifyKeys: "true"], environment: environment)).verifyKeys)
        for (name, value) in [("EXTERNAL_PROVIDER_VERIFY_KEYS", "maybe"), ("EXTERNAL_PROVIDER_OPENAI_BASE_URL", "ftp://x"), ("EXTERNAL_PROVIDER_VERIFY_TIMEOUT", "0")] {
            #expect(throws: ServeFailure.self) { try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: [name: value])) }
        }
    }

    @Test("keys go to an http base URL only on loopback; anything else must be https")
    func cleartextBaseURL() throws {
        for refused in ["http://gateway:8080", "http://api.openai.com", "http://10.0.0.1", "http://127.0.0.1.nip.io", "http://[::2]:80"] {
            #expect(throws: ServeFailure.self, "\(refused)") {
                try ServeSettings(Settings(flags: [.dataDir: "/d", .openAIBaseURL: refused], environment: [:]))
            }
        }
        for allowed in ["https://gateway:8080", "http://127.0.0.1:9", "http://127.10.0.1", "http://localhost:8080", "http://[::1]:8080"] {
            #expect(try ServeSettings(Settings(flags: [.dataDir: "/d", .openAIBaseURL: allowed], environment: [:])).openAIBaseURL == allowed)
        }
    }

    @Test("connection cap and request timeout: defaults, flags, environment, validation")
    func connectionSettings() throws {
        let defaults = try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: [:]))
        #expect(defaults.maxConnections == 2048 && defaults.requestTimeout == 60 && defaults.recheckInterval == 86400)
        for (text, seconds) in [("24h", 86400.0), ("90m", 5400), ("45s", 45), ("2d", 172_800), ("3600", 3600), ("0", 0)] {
            #expect(try ServeSettings(Settings(flags: [.dataDir: "/d", .recheckInterval: text], environment: [:])).recheckInterval == seconds)
        }
        #expect(try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: ["EXTERNAL_PROVIDER_RECHECK_INTERVAL": "30m"])).recheckInterval == 1800)
        for bad in ["soon", "-1h", "h", ""] {
            #expect(throws: ServeFailure.self) { try ServeSettings(Settings(flags: [.dataDir: "/d", .recheckInterval: bad], environment: [:])) }
        }
        let environment = ["EXTERNAL_PROVIDER_MAX_CONNECTIONS": "10", "EXTERNAL_PROVIDER_REQUEST_TIMEOUT": "2.5"]
        let fromEnvironment = try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: environment))
        #expect(fromEnvironment.maxConnections == 10 && fromEnvironment.requestTimeout == 2.5)
        let fromFlags = try ServeSettings(Settings(flags: [.dataDir: "/d", .maxConnections: "5", .requestTimeout: "1"], environment: environment))
        #expect(fromFlags.maxConnections == 5 && fromFlags.requestTimeout == 1)
        for (name, value) in [("EXTERNAL_PROVIDER_MAX_CONNECTIONS", "0"), ("EXTERNAL_PROVIDER_REQUEST_TIMEOUT", "0"), ("EXTERNAL_PROVIDER_MAX_CONNECTIONS", "many")] {
            #expect(throws: ServeFailure.self) { try ServeSettings(Settings(flags: [.dataDir: "/d"], environment: [name: value])) }
        }
    }

    @Test("each setting's variable, as its help names it, is the one the configuration reader reads; a flag wins over it")
    func variables() throws {
        #expect(Setting.port.variable == "EXTERNAL_PROVIDER_PORT" && Setting.openAIBaseURL.variable == "EXTERNAL_PROVIDER_OPENAI_BASE_URL")
        #expect(Setting.databaseURL.variable == "DATABASE_URL" && Setting.applicationID.variable == "EXTERNAL_PROVIDER_APP_ID")
        for setting in Setting.all {
            #expect(Settings(environment: [setting.variable: "from-env"]).text(setting) == "from-env", "\(setting.variable)")
            #expect(Settings(flags: [setting: "from-flag"], environment: [setting.variable: "from-env"]).text(setting) == "from-flag")
            #expect(Settings(environment: [:]).text(setting) == nil)
            #expect(setting.help.contains("Env: \(setting.variable)"))
        }
        #expect(Set(Setting.all.map(\.variable)).count == Setting.all.count)
    }

    @Test("a malformed value names the flag and the variable; a secret one is not echoed")
    func malformedMessages() throws {
        #expect(throws: ServeFailure("--port (EXTERNAL_PROVIDER_PORT) must be a number, not 'http'")) {
            try ServeSettings(Settings(environment: ["EXTERNAL_PROVIDER_PORT": "http"]))
        }
        let secret = Settings(environment: ["EXTERNAL_PROVIDER_APP_ID": "id-0123"])
        #expect(throws: ServeFailure("--app-id (EXTERNAL_PROVIDER_APP_ID) must be short")) {
            try secret.value(.applicationID, default: "", expecting: "short") { $0.count < 3 ? $0 : nil }
        }
    }

    @Test("a malformed port or log level is refused with one line")
    func malformed() {
        #expect(throws: ServeFailure.self) { try ServeSettings(Settings(environment: ["EXTERNAL_PROVIDER_PORT": "http"])) }
        #expect(throws: ServeFailure.self) { try ServeSettings(Settings(flags: [.port: "70000", .dataDir: "/d"], environment: [:])) }
        #expect(throws: ServeFailure.self) { try ServeSettings(Settings(flags: [.dataDir: "/d", .logLevel: "loud"], environment: [:])) }
    }

    @Test("bind failures say what happened and suggest a port that was free")
    func bindFailures() throws {
        let inUse = try #require(ServeFailure.bind(IOError(errnoCode: EADDRINUSE, reason: "bind"), host: "127.0.0.1", port: 1000))
        #expect(inUse.description.contains("127.0.0.1:1000"))
        #expect(inUse.description.contains("already in use"))
        #expect(inUse.description.range(of: #"use --port \d+"#, options: .regularExpression) != nil)
        let denied = try #require(ServeFailure.bind(IOError(errnoCode: EACCES, reason: "bind"), host: "127.0.0.1", port: 80))
        #expect(denied.description.contains("permission denied"))
        #expect(denied.description.range(of: #"use --port \d+"#, options: .regularExpression) != nil)
        #expect(!inUse.description.contains("\n"))
        #expect(ServeFailure.bind(StoreFault("x"), host: "h", port: 1) == nil)
    }
}

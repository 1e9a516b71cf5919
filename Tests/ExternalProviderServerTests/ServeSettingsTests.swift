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
        let settings = try ServeSettings(host: nil, port: nil, dataDirectory: nil, logLevel: nil, environment: ["XDG_DATA_HOME": "/xdg", "HOME": "/home/ada"])
        #expect(settings == ServeSettings(host: "127.0.0.1", port: 1000, dataDirectory: "/xdg/external-provider", logLevel: .info))
        let withoutXDG = try ServeSettings(host: nil, port: nil, dataDirectory: nil, logLevel: nil, environment: ["HOME": "/home/ada"])
        #expect(withoutXDG.dataDirectory == "/home/ada/.local/share/external-provider")
    }

    @Test("environment variables apply when no flag is given; flags win")
    func environmentAndFlags() throws {
        let environment = [
            "EXTERNAL_PROVIDER_HOST": "0.0.0.0", "EXTERNAL_PROVIDER_PORT": "39300",
            "EXTERNAL_PROVIDER_DATA_DIR": "/data", "EXTERNAL_PROVIDER_LOG_LEVEL": "debug",
        ]
        let fromEnvironment = try ServeSettings(host: nil, port: nil, dataDirectory: nil, logLevel: nil, environment: environment)
        #expect(fromEnvironment == ServeSettings(host: "0.0.0.0", port: 39300, dataDirectory: "/data", logLevel: .debug))
        let fromFlags = try ServeSettings(host: "::1", port: 4000, dataDirectory: "/flags", logLevel: "error", environment: environment)
        #expect(fromFlags == ServeSettings(host: "::1", port: 4000, dataDirectory: "/flags", logLevel: .error))
    }

    @Test("allowed hosts and origins and the master key file come from flags or the environment")
    func securitySettings() throws {
        let environment = [
            "EXTERNAL_PROVIDER_ALLOW_HOST": "a.internal, b.internal:8443", "EXTERNAL_PROVIDER_ALLOW_ORIGIN": "https://app.example.com",
            "EXTERNAL_PROVIDER_MASTER_KEY_FILE": "/keys/master",
        ]
        let fromEnvironment = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: environment)
        #expect(fromEnvironment.allowedHosts == ["a.internal", "b.internal:8443"])
        #expect(fromEnvironment.allowedOrigins == ["https://app.example.com"])
        #expect(fromEnvironment.masterKeyFile == "/keys/master")
        let fromFlags = try ServeSettings(
            host: nil, port: nil, dataDirectory: "/d", logLevel: nil, masterKeyFile: "/flag", allowedHosts: ["c"], allowedOrigins: [],
            environment: environment)
        #expect(fromFlags.allowedHosts == ["c"])
        #expect(fromFlags.masterKeyFile == "/flag")
        #expect(try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: [:]).allowedOrigins.isEmpty)
    }

    @Test("verification settings: on by default, switched by flag or environment, validated")
    func verificationSettings() throws {
        let defaults = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: [:])
        #expect(defaults.verifyKeys && defaults.openAIBaseURL == "https://api.openai.com" && defaults.verifyTimeout == 10)
        let environment = ["EXTERNAL_PROVIDER_VERIFY_KEYS": "false", "EXTERNAL_PROVIDER_OPENAI_BASE_URL": "https://gateway:8080", "EXTERNAL_PROVIDER_VERIFY_TIMEOUT": "2.5"]
        let fromEnvironment = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: environment)
        #expect(!fromEnvironment.verifyKeys && fromEnvironment.openAIBaseURL == "https://gateway:8080" && fromEnvironment.verifyTimeout == 2.5)
        #expect(try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, verifyKeys: true, environment: environment).verifyKeys)
        for (name, value) in [("EXTERNAL_PROVIDER_VERIFY_KEYS", "maybe"), ("EXTERNAL_PROVIDER_OPENAI_BASE_URL", "ftp://x"), ("EXTERNAL_PROVIDER_VERIFY_TIMEOUT", "0")] {
            #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: [name: value]) }
        }
    }

    @Test("keys go to an http base URL only on loopback; anything else must be https")
    func cleartextBaseURL() throws {
        for refused in ["http://gateway:8080", "http://api.openai.com", "http://10.0.0.1", "http://127.0.0.1.nip.io", "http://[::2]:80"] {
            #expect(throws: ServeFailure.self, "\(refused)") {
                try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, openAIBaseURL: refused, environment: [:])
            }
        }
        for allowed in ["https://gateway:8080", "http://127.0.0.1:9", "http://127.10.0.1", "http://localhost:8080", "http://[::1]:8080"] {
            #expect(try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, openAIBaseURL: allowed, environment: [:]).openAIBaseURL == allowed)
        }
    }

    @Test("connection cap and request timeout: defaults, flags, environment, validation")
    func connectionSettings() throws {
        let defaults = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: [:])
        #expect(defaults.maxConnections == 2048 && defaults.requestTimeout == 60 && defaults.recheckInterval == 86400)
        for (text, seconds) in [("24h", 86400.0), ("90m", 5400), ("45s", 45), ("2d", 172_800), ("3600", 3600), ("0", 0)] {
            #expect(try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, recheckInterval: text, environment: [:]).recheckInterval == seconds)
        }
        #expect(try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: ["EXTERNAL_PROVIDER_RECHECK_INTERVAL": "30m"]).recheckInterval == 1800)
        for bad in ["soon", "-1h", "h", ""] {
            #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, recheckInterval: bad, environment: [:]) }
        }
        let environment = ["EXTERNAL_PROVIDER_MAX_CONNECTIONS": "10", "EXTERNAL_PROVIDER_REQUEST_TIMEOUT": "2.5"]
        let fromEnvironment = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: environment)
        #expect(fromEnvironment.maxConnections == 10 && fromEnvironment.requestTimeout == 2.5)
        let fromFlags = try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, maxConnections: 5, requestTimeout: 1, environment: environment)
        #expect(fromFlags.maxConnections == 5 && fromFlags.requestTimeout == 1)
        for (name, value) in [("EXTERNAL_PROVIDER_MAX_CONNECTIONS", "0"), ("EXTERNAL_PROVIDER_REQUEST_TIMEOUT", "0"), ("EXTERNAL_PROVIDER_MAX_CONNECTIONS", "many")] {
            #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: nil, environment: [name: value]) }
        }
    }

    @Test("a malformed port or log level is refused with one line")
    func malformed() {
        #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: nil, dataDirectory: nil, logLevel: nil, environment: ["EXTERNAL_PROVIDER_PORT": "http"]) }
        #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: 70000, dataDirectory: "/d", logLevel: nil, environment: [:]) }
        #expect(throws: ServeFailure.self) { try ServeSettings(host: nil, port: nil, dataDirectory: "/d", logLevel: "loud", environment: [:]) }
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

import ArgumentParser
import ExternalProviderClient
import ExternalProviderSetup
import Foundation

/// Where the running server is, and which application to call it as.
struct ServerOptions: ParsableArguments {
    @Option(name: CommandOption.server.long, help: "The running server. Default: http://localhost:1000.") var server = "http://localhost:1000"

    @Option(help: ArgumentHelp("File holding the application id; or give the id itself in \(StoreSettings.applicationID.declaration.variable). Default: the data dir's application-id file (\(StoreSettings.dataDir.declaration.variable), else the default data dir)."))
    var appIDFile: String?

    func client() -> ExternalProviderClient {
        guard let url = URL(string: server), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()), url.host != nil else {
            exitWith(.badInput, "\(CommandOption.server.flag) must be an http or https URL such as http://localhost:1000, not '\(server)'")
        }
        let settings = Settings()
        let id: String
        do {
            if let appIDFile {
                id = try ExternalProviderClient.applicationID(inFile: URL(fileURLWithPath: appIDFile))
            } else if let given = (try? settings.value(StoreSettings.applicationID))??.trimmingCharacters(in: .whitespacesAndNewlines), !given.isEmpty {
                id = given
            } else {
                let dataDirectory = (try? settings.value(StoreSettings.dataDir)) ?? StoreSettings.defaultDataDirectory(settings.environment)
                id = try ExternalProviderClient.applicationID(inDataDirectory: URL(fileURLWithPath: dataDirectory))
            }
        } catch {
            exitWith(.badInput, "\(error.message); give --app-id-file or \(StoreSettings.applicationID.declaration.variable)")
        }
        return ExternalProviderClient(serverURL: url, applicationID: id)
    }
}

/// Runs a call of the client; a failure is its one line and its exit status.
func calling<Result>(_ call: () async throws(ExternalProviderClientError) -> Result) async -> Result {
    do {
        return try await call()
    } catch {
        exitWith(ExitStatus(error), error.message)
    }
}


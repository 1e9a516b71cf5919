import ExternalProviderClient
import Foundation

// store-my-key USER [SERVER]: stores the OpenAI key read from standard input for USER, or replaces it,
// calling the server as the `default` application of the data dir (EXTERNAL_PROVIDER_DATA_DIR, else
// ~/.local/share/external-provider). The key is never an argument.
let arguments = CommandLine.arguments.dropFirst()
guard let user = arguments.first else {
    FileHandle.standardError.write(Data("usage: store-my-key USER [SERVER] < key-file\n".utf8))
    exit(2)
}
let server = URL(string: arguments.dropFirst().first ?? "http://localhost:1000")!
let dataDirectory = ProcessInfo.processInfo.environment["EXTERNAL_PROVIDER_DATA_DIR"].map { URL(fileURLWithPath: $0) }
    ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".local/share/external-provider")

do {
    let client = ExternalProviderClient(serverURL: server, applicationID: try ExternalProviderClient.applicationID(inDataDirectory: dataDirectory))
    let key = (readLine() ?? "").trimmingCharacters(in: .whitespaces)
    let stored: StoredKeys
    do {
        stored = try await client.update(user: user, apiKey: key)
    } catch .notFound {
        stored = try await client.create(user: user, apiKey: key, name: "from store-my-key")
    }
    print("stored \(stored.openAI?.maskedAPIKey ?? "?") for \(user)")
} catch {
    FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
    exit(1)
}

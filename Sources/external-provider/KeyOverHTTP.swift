import ArgumentParser
import ExternalProviderClient
import ExternalProviderServer
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the running server is, and which application to call it as.
struct ServerOptions: ParsableArguments {
    @Option(help: "The running server. Default: http://localhost:1000.") var server = "http://localhost:1000"

    @Option(help: ArgumentHelp("File holding the application id; or give the id itself in \(Setting.applicationID.variable). Default: the data dir's application-id file (\(Setting.dataDir.variable), else the default data dir)."))
    var appIDFile: String?

    func client() -> ExternalProviderClient {
        guard let url = URL(string: server), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()), url.host != nil else {
            exitWith(.badInput, "--server must be an http or https URL such as http://localhost:1000, not '\(server)'")
        }
        let settings = Settings()
        let id: String
        do {
            if let appIDFile {
                id = try ExternalProviderClient.applicationID(inFile: URL(fileURLWithPath: appIDFile))
            } else if let given = settings.text(.applicationID)?.trimmingCharacters(in: .whitespacesAndNewlines), !given.isEmpty {
                id = given
            } else {
                id = try ExternalProviderClient.applicationID(inDataDirectory: URL(fileURLWithPath: settings.dataDirectory))
            }
        } catch {
            exitWith(.badInput, "\(error.message); give --app-id-file or \(Setting.applicationID.variable)")
        }
        return ExternalProviderClient(serverURL: url, applicationID: id)
    }
}

/// A distinct exit status for each failure a script may want to tell apart.
enum ExitStatus: Int32 {
    case failure = 1
    /// A field the server (or this command) refused: 400, 413, 415; no key given.
    case badInput = 2
    /// 401: OpenAI refused the key, or the application id was refused.
    case keyRejected = 3
    /// 404: the user is unknown, or has no key.
    case notFound = 4
    /// No server answered at `--server`.
    case unreachable = 5

    init(_ error: ExternalProviderClientError) {
        switch error {
        case .badRequest, .contentTooLarge, .unsupportedMediaType, .applicationIDUnreadable: self = .badInput
        case .unauthorized: self = .keyRejected
        case .notFound: self = .notFound
        case .unreachable: self = .unreachable
        default: self = .failure
        }
    }
}

/// Prints `error: <line>` to stderr and exits with `status`.
func exitWith(_ status: ExitStatus, _ line: String) -> Never {
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
    Foundation.exit(status.rawValue)
}

/// Runs a call of the client; a failure is its one line and its exit status.
func calling<Result>(_ call: () async throws(ExternalProviderClientError) -> Result) async -> Result {
    do {
        return try await call()
    } catch {
        exitWith(ExitStatus(error), error.message)
    }
}

struct Key: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set or remove a user's OpenAI key on a running server. The key is read from the terminal or standard input, never from an argument, so it stays out of shell history and `ps`.",
        subcommands: [Set.self, Remove.self]
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the user's OpenAI key, or replace it: read without echo from the terminal, or from standard input when that is not a terminal.")

        @Option(help: "The user whose key this is.") var user: String
        @Option(help: "A name for the key.") var name: String?
        @Option(name: .customLong("org"), help: "The OpenAI organization the key belongs to.") var organization: String?
        @OptionGroup var target: ServerOptions

        func run() async throws {
            let client = target.client()
            let apiKey = SecretInput.read(prompt: "OpenAI API key for \(user) (not shown): ")
            guard !apiKey.isEmpty else { exitWith(.badInput, "no key given: type it at the prompt, or pipe it to standard input") }
            let (user, name, organization) = (user, name, organization)
            // An update replaces the key of a user who has one; a user without one (404) gets a create.
            let stored = await calling { () async throws(ExternalProviderClientError) in
                do throws(ExternalProviderClientError) {
                    return try await client.update(
                        user: user, apiKey: apiKey, name: name.map(FieldEdit.set) ?? .keep, organization: organization.map(FieldEdit.set) ?? .keep)
                } catch {
                    guard case .notFound = error else { throw error }
                    return try await client.create(user: user, apiKey: apiKey, name: name, organization: organization)
                }
            }
            let key = stored.openAI
            print("stored the OpenAI key \(key?.maskedAPIKey ?? "?") for user '\(user)'"
                + (key?.name.map { ", named '\($0)'" } ?? "") + (key?.organization.map { ", organization \($0)" } ?? ""))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the user's OpenAI key from a running server.")

        @Option(help: "The user whose key to remove.") var user: String
        @OptionGroup var target: ServerOptions

        func run() async throws {
            let client = target.client()
            let user = user
            _ = await calling { () async throws(ExternalProviderClientError) in try await client.delete(user: user) }
            print("user '\(user)' has no OpenAI key stored now")
        }
    }
}

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models the user's stored OpenAI key may use, through a running server (needs an application with the relay scope).")

    @Option(help: "The user whose key lists the models.") var user: String
    @OptionGroup var target: ServerOptions

    func run() async throws {
        let client = target.client()
        let user = user
        for model in await calling({ () async throws(ExternalProviderClientError) in try await client.listModels(user: user) }) {
            print(model.id)
        }
    }
}

/// Reads a secret: from the terminal without echo, or from standard input when that is not a terminal.
enum SecretInput {
    /// The terminal's settings while echo is off, to put back if the user interrupts.
    nonisolated(unsafe) private static var savedTerminal: termios?

    static func read(prompt: String) -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            let text = String(decoding: data, as: UTF8.self)
            return text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        }
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { exitWith(.failure, "cannot read the terminal's settings") }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        savedTerminal = original
        // Interrupted while echo is off: put the terminal back before leaving.
        signal(SIGINT) { _ in
            if var saved = SecretInput.savedTerminal { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
            _exit(130)
        }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        let line = readLine(strippingNewline: true) ?? ""
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
        signal(SIGINT, SIG_DFL)
        savedTerminal = nil
        FileHandle.standardError.write(Data("\n".utf8))
        return line.trimmingCharacters(in: .whitespaces)
    }
}

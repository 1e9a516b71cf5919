import ArgumentParser
import ExternalProviderClient
import Foundation

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

/// Prints `error: <line>` to stderr and exits 1: every failure a command reports is one line.
func fail(_ line: String) -> Never {
    exitWith(.failure, line)
}

/// A command's own option, its name written once: the `@Option` that declares it and the messages that
/// name it both read it.
struct CommandOption {
    let name: String

    /// For the declaration: `@Option(name: CommandOption.user.long)`.
    var long: NameSpecification { .customLong(name) }
    /// For a message: `--user`.
    var flag: String { "-" + "-" + name }

    static let user = CommandOption(name: "user")
    static let since = CommandOption(name: "since")
    static let provider = CommandOption(name: "provider")
    static let server = CommandOption(name: "server")
    static let scope = CommandOption(name: "scope")
    static let models = CommandOption(name: "models")
    static let providers = CommandOption(name: "providers")
    static let expires = CommandOption(name: "expires")
    static let requestsPerMinute = CommandOption(name: "rpm")
    static let tokensPerDay = CommandOption(name: "tokens-per-day")
    static let tokensPerMonth = CommandOption(name: "tokens-per-month")
    static let clear = CommandOption(name: "clear")
    static let application = CommandOption(name: "app")
    static let groupedBy = CommandOption(name: "by")
}

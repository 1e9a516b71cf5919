import ArgumentParser
import ExternalProviderClient
import ExternalProviderCore
import Foundation

/// The user a command names, checked before anything is sent: an empty or malformed one is bad input.
func validated(_ user: String) -> String {
    do {
        return try UserID(validating: user).rawValue
    } catch {
        exitWith(.badInput, "\(CommandOption.user.flag): \(error.message)")
    }
}

/// Which provider's key a command is about: `openai` unless told.
struct ProviderOption: ParsableArguments {
    @Option(name: CommandOption.provider.long, help: ArgumentHelp("The key's provider: \(Provider.names).")) var provider = "openai"

    var chosen: Provider {
        guard let known = Provider(name: provider.lowercased()) else {
            exitWith(.badInput, "\(CommandOption.provider.flag): unknown provider '\(provider)'; use one of \(Provider.names)")
        }
        return known
    }
}

struct Key: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set or remove a user's key for a provider on a running server. The key is read from the terminal or standard input, never from an argument, so it stays out of shell history and `ps`.",
        subcommands: [Set.self, Remove.self]
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the user's key, or replace it, once the provider accepts it: read without echo from the terminal, or from standard input when that is not a terminal. A name or organization not given is kept from the key it replaces.")

        @Option(name: CommandOption.user.long, help: "The user whose key this is.") var user: String
        @OptionGroup var provider: ProviderOption
        @Option(help: "A name for the key.") var name: String?
        @Option(name: .customLong("org"), help: "The OpenAI organization the key belongs to (OpenAI keys only).") var organization: String?
        @OptionGroup var target: ServerOptions

        func run() async throws {
            let client = target.client()
            let provider = provider.chosen
            let user = validated(user)
            let apiKey = SecretInput.read(prompt: "\(provider.displayName) API key for \(user) (not shown): ")
            guard !apiKey.isEmpty else { exitWith(.badInput, "no key given: type it at the prompt, or pipe it to standard input") }
            let (name, organization) = (name, organization)
            let stored = await calling { () async throws(ExternalProviderClientError) in
                // What is not given is kept from the key this one replaces: a PUT is the whole key.
                let current = name == nil || organization == nil ? try await client.keys(of: user).first { $0.provider == provider } : nil
                return try await client.putKey(
                    user: user, provider: provider, apiKey: apiKey, name: name ?? current?.name, organization: organization ?? current?.organization
                ).key
            }
            print("stored the \(provider.displayName) key \(stored.maskedAPIKey) for user '\(user)'"
                + (stored.name.map { ", named '\($0)'" } ?? "") + (stored.organization.map { ", organization \($0)" } ?? ""))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the user's key for a provider from a running server.")

        @Option(name: CommandOption.user.long, help: "The user whose key to remove.") var user: String
        @OptionGroup var provider: ProviderOption
        @OptionGroup var target: ServerOptions

        func run() async throws {
            let client = target.client()
            let (user, provider) = (validated(user), provider.chosen)
            await calling { () async throws(ExternalProviderClientError) in try await client.removeKey(user: user, provider: provider) }
            print("user '\(user)' has no \(provider.displayName) key stored now")
        }
    }
}

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models the user's stored key may use, as its provider lists them, through a running server.")

    @Option(name: CommandOption.user.long, help: "The user whose key lists the models.") var user: String
    @OptionGroup var provider: ProviderOption
    @OptionGroup var target: ServerOptions

    func run() async throws {
        let client = target.client()
        let (user, provider) = (validated(user), provider.chosen)
        for model in await calling({ () async throws(ExternalProviderClientError) in try await client.models(user: user, provider: provider) }) {
            print(model.id)
        }
    }
}

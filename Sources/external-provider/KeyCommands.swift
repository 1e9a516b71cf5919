import ArgumentParser
import ExternalProviderClient
import Foundation

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


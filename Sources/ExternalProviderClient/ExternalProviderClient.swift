import AsyncHTTPClient
import ExternalProviderAPI
import ExternalProviderCore
import Foundation
import HTTPTypes
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

/// A client of an external-provider server (or of PiecesOS's ExternalProvider API): store, change and
/// remove a user's keys (OpenAI's through the contract, every provider's through the keys API), and list
/// the models each may use. Keys go to the server and never come
/// back: every answer carries the key masked.
///
/// ```swift
/// let client = ExternalProviderClient(
///     serverURL: URL(string: "http://localhost:1000")!,
///     applicationID: try ExternalProviderClient.applicationID(inDataDirectory: dataDirectory))
/// let stored = try await client.create(user: "auth0|ada", apiKey: key, name: "work")
/// print(stored.openAI?.maskedAPIKey ?? "")   // sk-...Wxyz
/// ```
public struct ExternalProviderClient: Sendable {
    private let client: Client

    /// The HTTP client every `ExternalProviderClient` shares unless given another, made once and never
    /// shut down (like `HTTPClient.shared`). Unlike that one it follows no redirect, which would carry the
    /// application id elsewhere, and reports a server that is not there at once instead of retrying the
    /// connection until the request's deadline.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// A client of the server at `serverURL` that calls as the application whose id is `applicationID`
    /// (sent as `X-Application-ID`). `timeout` bounds each call: a server that checks a key with OpenAI
    /// may take up to its own verify timeout (10 s by default) to answer.
    public init(serverURL: URL, applicationID: String, httpClient: HTTPClient = sharedHTTPClient, timeout: Duration = .seconds(60)) {
        let (seconds, attoseconds) = timeout.components
        let transport = AsyncHTTPClientTransport(
            configuration: .init(client: httpClient, timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
        self.init(serverURL: serverURL, applicationID: applicationID, transport: transport)
    }

    /// Over another transport: for answers a live server cannot be made to give on demand.
    init(serverURL: URL, applicationID: String, transport: any ClientTransport) {
        client = Client(
            serverURL: serverURL, configuration: .init(), transport: transport,
            middlewares: [ApplicationIDMiddleware(applicationID: applicationID), RefusalMiddleware()])
    }

    /// Stores the user's first OpenAI key. The server checks it with OpenAI first, unless its
    /// verification is off. Throws `.conflict` if the user already has one: use `update`.
    public func create(user: String, apiKey: String, name: String? = nil, organization: String? = nil) async throws(ExternalProviderClientError) -> StoredKeys {
        let body = Components.Schemas.PrecreatedExternalProviderApiKey(
            user: user, openAI: .init(apiKey: apiKey, apiKeyName: name, organizationKey: organization))
        let output = try await call { try await client.externalProviderApiKeyCreate(body: .json(body)) }
        switch output {
        case .ok(let ok): return try await StoredKeys(decoded { try ok.body.json.metadata })
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// Changes the user's OpenAI key, name or organization: `apiKey` `nil` keeps the stored key, and
    /// `.keep`, `.clear` or `.set(…)` say what becomes of the name and the organization. A new key, or a
    /// new organization, is checked with OpenAI first. Throws `.notFound` if the user has no key.
    public func update(
        user: String, apiKey: String? = nil, name: FieldEdit = .keep, organization: FieldEdit = .keep
    ) async throws(ExternalProviderClientError) -> StoredKeys {
        let body = Components.Schemas.PreupdatedExternalProviderApiKey(
            user: user, openAI: .init(apiKey: apiKey, apiKeyName: name.wireValue, organizationKey: organization.wireValue))
        let output = try await call { try await client.externalProviderApiKeyUpdate(body: .json(body)) }
        switch output {
        case .ok(let ok): return try await StoredKeys(decoded { try ok.body.json.metadata })
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// Removes the user's OpenAI key; the user and its global id stay. Removing a key that is not there
    /// changes nothing. Throws `.notFound` for a user the server never saw.
    public func delete(user: String) async throws(ExternalProviderClientError) -> StoredKeys {
        let output = try await call { try await client.externalProviderApiKeyDelete(body: .json(.init(user: user, openAI: true))) }
        switch output {
        case .ok(let ok): return try await StoredKeys(decoded { try ok.body.json.metadata })
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// The models the user's stored key may use, as OpenAI lists them. Needs an application with the
    /// `relay` scope. Throws `.unauthorized` when the user has no key or OpenAI refuses it.
    public func listModels(user: String) async throws(ExternalProviderClientError) -> [Model] {
        let output = try await call { try await client.openAIModelsList(body: .json(.init(user: user))) }
        switch output {
        case .ok(let ok):
            let listed = try await decoded { try ok.body.json.models.iterable }
            return listed.map { Model(id: $0.unique ?? $0.name, name: $0.name, created: $0.created.value) }
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    // The keys API: every provider's key.

    /// Every provider's key of the user, masked, with its health. Needs the `keys` scope.
    public func keys(of user: String) async throws(ExternalProviderClientError) -> [ProviderKeyStatus] {
        let output = try await call { try await client.listUserKeys(path: .init(user: user)) }
        switch output {
        case .ok(let ok):
            return try await decoded { try ok.body.json.keys }.map { stored throws(ExternalProviderClientError) in try ProviderKeyStatus(stored) }
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// Stores the user's key for `provider`, or replaces it, once the provider accepts it; `name` and
    /// `organization` (OpenAI's only) left out are none. The same key again changes nothing, so this may
    /// be retried. Returns the key as stored, and whether it is new.
    public func putKey(
        user: String, provider: Provider, apiKey: String, name: String? = nil, organization: String? = nil
    ) async throws(ExternalProviderClientError) -> (key: ProviderKeyStatus, created: Bool) {
        let body = Components.Schemas.KeyInput(apiKey: apiKey, name: name, organization: organization)
        let output = try await call { try await client.putUserKey(path: .init(user: user, provider: provider.name), body: .json(body)) }
        switch output {
        case .ok(let ok): return (try ProviderKeyStatus(try await decoded { try ok.body.json }), false)
        case .created(let created): return (try ProviderKeyStatus(try await decoded { try created.body.json }), true)
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// Renames the user's `provider` key, or changes its OpenAI organization: `.keep`, `.clear` or
    /// `.set(…)`. Throws `.notFound` if the user has no such key.
    public func changeKey(
        user: String, provider: Provider, name: FieldEdit = .keep, organization: FieldEdit = .keep
    ) async throws(ExternalProviderClientError) -> ProviderKeyStatus {
        var changes: [String: (any Sendable)?] = [:]
        for (field, edit) in [("name", name), ("organization", organization)] {
            switch edit {
            case .keep: continue
            case .clear: changes[field] = .some(nil)
            case .set(let value): changes[field] = value
            }
        }
        let body: Components.Schemas.KeyChanges
        do {
            body = .init(additionalProperties: try .init(unvalidatedValue: changes))
        } catch {
            throw .invalidResponse("the changes could not be written: \(error)")
        }
        let output = try await call { try await client.patchUserKey(path: .init(user: user, provider: provider.name), body: .json(body)) }
        switch output {
        case .ok(let ok): return try ProviderKeyStatus(try await decoded { try ok.body.json })
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// Removes the user's `provider` key; removing one that is not there is done too.
    public func removeKey(user: String, provider: Provider) async throws(ExternalProviderClientError) {
        let output = try await call { try await client.deleteUserKey(path: .init(user: user, provider: provider.name)) }
        guard case .noContent = output else { throw .invalidResponse("the server answered with a status it does not document") }
    }

    /// The models the user's `provider` key may use, as the provider lists them. Needs the `keys` scope.
    /// Throws `.notFound` when the user has no such key, `.unauthorized` when the provider refuses it.
    public func models(user: String, provider: Provider) async throws(ExternalProviderClientError) -> [Model] {
        let output = try await call { try await client.listUserKeyModels(path: .init(user: user, provider: provider.name)) }
        switch output {
        case .ok(let ok):
            return try await decoded { try ok.body.json.models }.map {
                Model(id: $0.id, name: $0.displayName ?? $0.id, created: $0.created ?? Date(timeIntervalSince1970: 0))
            }
        default: throw .invalidResponse("the server answered with a status it does not document")
        }
    }

    /// The application id in a data dir's `application-id` file, which `serve` writes on first start
    /// for the application `default`.
    public static func applicationID(inDataDirectory directory: URL) throws(ExternalProviderClientError) -> String {
        try applicationID(inFile: directory.appendingPathComponent("application-id"))
    }

    /// The application id in `file`: its first line, without surrounding whitespace.
    public static func applicationID(inFile file: URL) throws(ExternalProviderClientError) -> String {
        let text: String
        do {
            text = try String(contentsOf: file, encoding: .utf8)
        } catch {
            throw .applicationIDUnreadable("cannot read the application id from \(file.path): \(error.localizedDescription)")
        }
        let id = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !id.isEmpty else { throw .applicationIDUnreadable("\(file.path) holds no application id") }
        return id
    }

    /// Runs a generated call and sorts what it throws: the server could not be reached, or its answer
    /// could not be read.
    private func call<Output>(_ body: () async throws -> Output) async throws(ExternalProviderClientError) -> Output {
        do {
            return try await body()
        } catch let error as ClientError {
            if let refusal = error.underlyingError as? ExternalProviderClientError { throw refusal }
            // The runtime's own description holds the request, the application id header among them:
            // only what it wraps is said.
            if error.underlyingError is DecodingError { throw .invalidResponse("the server's answer could not be read: \(error.underlyingError)") }
            throw .unreachable("the server could not be reached: \(error.underlyingError)")
        } catch {
            throw .unreachable("the server could not be reached: \(error)")
        }
    }
}

/// Sends the application id with every request.
struct ApplicationIDMiddleware: ClientMiddleware {
    let applicationID: String

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[HTTPField.Name("X-Application-ID")!] = applicationID
        return try await next(request, body, baseURL)
    }
}

/// Every answer that is not a success becomes its `ExternalProviderClientError`, by status, in one
/// place, with the server's sentence; the generated per-operation cases for them are never reached.
struct RefusalMiddleware: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, answer) = try await next(request, body, baseURL)
        guard response.status.kind == .successful else {
            throw ExternalProviderClientError(status: response.status.code, sentence: await ExternalProviderClientError.text(answer))
        }
        return (response, answer)
    }
}

extension FieldEdit {
    /// The API's form: absent keeps, `""` clears.
    var wireValue: String? {
        switch self {
        case .keep: nil
        case .clear: ""
        case .set(let value): value
        }
    }
}

/// Reads a decoded body's part, sorting a failure as an unreadable answer.
func decoded<Value>(_ read: () throws -> Value) async throws(ExternalProviderClientError) -> Value {
    do {
        return try read()
    } catch {
        throw .invalidResponse("the server's answer could not be read: \(error)")
    }
}

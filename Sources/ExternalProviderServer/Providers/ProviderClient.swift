import AsyncHTTPClient
import ExternalProviderCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Lists the models a key may use, with its provider: the outcome, and on `.accepted` the models.
public protocol ModelLister: Sendable {
    func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, [ListedModel]?)
}

/// Where each provider's API is: the base URL its setting gives, with the profile's suffix
/// (`https://api.openai.com` + `/v1`), never with a trailing slash.
public struct ProviderRoots: Sendable {
    private let roots: [Provider: String]

    /// `baseURLs`: each provider's setting; a provider not given gets its profile's default.
    public init(baseURLs: [Provider: String] = [:]) {
        var roots: [Provider: String] = [:]
        for provider in Provider.allCases {
            var base = baseURLs[provider] ?? provider.profile.defaultBaseURL
            while base.hasSuffix("/") { base.removeLast() }
            roots[provider] = base + provider.profile.apiRootSuffix
        }
        self.roots = roots
    }

    public subscript(provider: Provider) -> String { roots[provider]! }
}

/// Calls a provider with a stored key, on its owner's behalf: the check of a key before it is stored
/// (and again later), and its model list. How the key goes on the request, where the call goes and how
/// the answer reads all come from the provider's profile. Redirects are never followed: following one
/// would send the key somewhere else.
public struct ProviderClient: KeyVerifier, ModelLister {
    /// Enough for any error body a provider sends; a longer one is not read further.
    static let maxErrorBytes = 64 * 1024
    /// A hundred models are some 10 to 50 KiB; room for many more.
    static let maxListBytes = 4 * 1024 * 1024

    let client: HTTPClient
    let roots: ProviderRoots
    let timeout: TimeAmount
    let logger: Logger

    public init(client: HTTPClient, roots: ProviderRoots, timeout: TimeAmount, logger: Logger) {
        self.client = client
        self.roots = roots
        self.timeout = timeout
        self.logger = logger
    }

    /// The one client the server shares for every check, with the connect and read timeouts.
    public static func makeClient(timeout: TimeAmount) -> HTTPClient {
        HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: timeout, read: timeout)),
            backgroundActivityLogger: RelayClients.quiet
        )
    }

    public func verify(_ credentials: ProviderCredentials) async -> VerificationOutcome {
        let (outcome, _) = await listModels(credentials)
        logger.info(
            "key checked with its provider",
            metadata: ["provider": "\(credentials.provider.name)", "outcome": "\(outcome)", "organization.given": "\(credentials.organization != nil)"])
        return outcome
    }

    /// The profile's models call with the credentials: what it says of them, and the models it lists.
    public func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, [ListedModel]?) {
        let profile = credentials.provider.profile
        var request = HTTPClientRequest(url: roots[credentials.provider] + profile.modelsPath)
        for header in profile.credentialHeaders(ProviderKey(credentials)) + profile.defaultHeaders {
            request.headers.add(name: header.name, value: header.value)
        }
        do {
            // Connect and read each get `timeout`; the whole exchange is bounded by both together.
            let response = try await client.execute(request, timeout: timeout + timeout, logger: RelayClients.quiet)
            let status = Int(response.status.code)
            let body = try? await response.body.collect(upTo: (200..<300).contains(status) ? Self.maxListBytes : Self.maxErrorBytes)
            let data = body.map { Data(buffer: $0) }
            let outcome = profile.outcome(status: status, body: data)
            guard outcome == .accepted else { return (outcome, nil) }
            return (outcome, data.flatMap(profile.readModels))
        } catch {
            return (Self.outcome(for: error, provider: credentials.provider), nil)
        }
    }

    static func outcome(for error: any Error, provider: Provider) -> VerificationOutcome {
        switch UpstreamFailure(error) {
        case .timedOut, .connectTimedOut: .timedOut
        case let failure: .unavailable(reason: failure.reason(provider))
        }
    }
}

extension ProviderKey {
    /// The key and organization that `credentials` are.
    init(_ credentials: ProviderCredentials) {
        self.init(apiKey: credentials.apiKey, organizationKey: credentials.organization)
    }
}

/// Shuts a shared HTTP client down with the server.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

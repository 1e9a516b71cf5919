import AsyncHTTPClient
import ExternalProviderCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Asks the provider which models the credentials may use: the outcome, and on `.accepted` the body.
public protocol ModelLister: Sendable {
    func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, Data?)
}

/// Asks OpenAI's `GET /v1/models`, which any working key may call, whether the key works with the
/// organization. Redirects are never followed: following one would send the key somewhere else.
public struct OpenAIKeyVerifier: KeyVerifier, ModelLister {
    public static let defaultBaseURL = "https://api.openai.com"
    /// Enough for any error body OpenAI sends; a longer one is not read further.
    static let maxBodyBytes = 64 * 1024
    /// OpenAI lists about a hundred models in some 10 KiB; room for many more.
    static let maxListBytes = 4 * 1024 * 1024

    let client: HTTPClient
    let baseURL: String
    let timeout: TimeAmount
    let logger: Logger

    public init(client: HTTPClient, baseURL: String, timeout: TimeAmount, logger: Logger) {
        self.client = client
        self.baseURL = Self.trimmedBaseURL(baseURL)
        self.timeout = timeout
        self.logger = logger
    }

    /// The base URL without a trailing slash, so paths join it with one.
    static func trimmedBaseURL(_ baseURL: String) -> String {
        baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
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
        logger.info("key checked with OpenAI", metadata: ["outcome": "\(outcome)", "organization.given": "\(credentials.organization != nil)"])
        return outcome
    }

    /// `GET /v1/models` with the credentials. A successful answer's body is at most `maxListBytes`.
    public func listModels(_ credentials: ProviderCredentials) async -> (VerificationOutcome, Data?) {
        var request = HTTPClientRequest(url: baseURL + "/v1/models")
        request.headers.add(name: "Authorization", value: "Bearer \(credentials.apiKey)")
        if let organization = credentials.organization {
            request.headers.add(name: "OpenAI-Organization", value: organization)
        }
        do {
            // Connect and read each get `timeout`; the whole exchange is bounded by both together.
            let response = try await client.execute(request, timeout: timeout + timeout, logger: RelayClients.quiet)
            let body = try? await response.body.collect(upTo: response.status == .ok ? Self.maxListBytes : Self.maxBodyBytes)
            let data = body.map { Data(buffer: $0) }
            return (Self.outcome(status: response.status, body: data), data)
        } catch {
            return (Self.outcome(for: error), nil)
        }
    }

    static let rateLimitedReason = "OpenAI is limiting requests (429)"

    static func outcome(status: HTTPResponseStatus, body: Data?) -> VerificationOutcome {
        switch status.code {
        case 200:
            return .accepted
        case 401, 403:
            return .rejected(code: errorCode(in: body) ?? "unknown")
        case 300..<400:
            return .unavailable(reason: "OpenAI answered with a redirect (\(status.code)), which is not followed because it would send the key elsewhere")
        case 429:
            return .unavailable(reason: rateLimitedReason)
        case 500..<600:
            return .unavailable(reason: "OpenAI answered \(status.code)")
        default:
            return .unavailable(reason: "OpenAI answered an unexpected \(status.code)")
        }
    }

    static func outcome(for error: any Error) -> VerificationOutcome {
        switch UpstreamFailure(error) {
        case .timedOut, .connectTimedOut: .timedOut
        case let failure: .unavailable(reason: failure.reason)
        }
    }

    /// OpenAI's `error.code` (or `error.type` when the code is null), kept only if it looks like a code,
    /// so nothing else from the body, such as its message with the masked key, is ever repeated.
    static func errorCode(in body: Data?) -> String? {
        guard let body,
            let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let error = object["error"] as? [String: Any]
        else { return nil }
        for candidate in [error["code"], error["type"]] {
            if let code = candidate as? String, (1...64).contains(code.count),
                code.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") })
            {
                return code
            }
        }
        return nil
    }
}

/// Shuts the shared client down with the server.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

import ExternalProviderStore
import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage, the client's address, which the failed
/// application-id limiter counts by, and the application the request was authenticated as.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Set by `ApplicationAuthMiddleware`; `nil` on paths that need no application.
    public var application: ApplicationGrant?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        application = nil
    }
}

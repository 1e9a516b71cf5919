import ExternalProviderStore
import Hummingbird
import NIOCore
import Synchronization

/// The request context: Hummingbird's core storage, the client's address, which the failed
/// application-id limiter counts by, and the application the request was authenticated as.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Set by `ApplicationAuthMiddleware`; `nil` on paths that need no application.
    public var application: ApplicationGrant?
    /// What inner middleware learns and the request log, outside them, reports.
    let facts = RequestFacts()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        application = nil
    }
}

/// Shared by every copy of one request's context: a middleware's changes to its context do not reach
/// the middleware outside it, but writes to this box do.
final class RequestFacts: Sendable {
    private let applicationName = Mutex<String?>(nil)

    /// The authenticated application's name, never its id.
    var application: String? {
        get { applicationName.withLock { $0 } }
        set { applicationName.withLock { $0 = newValue } }
    }
}

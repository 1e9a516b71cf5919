import ExternalProviderStore
import Hummingbird
import NIOCore
import Synchronization

/// The request context: Hummingbird's core storage, the client's address, which the failed
/// application-id limiter counts by, and the application the request was authenticated as.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection, for work that must stop when its client leaves (`ClientPresence`).
    let channel: any Channel
    /// Set by `ApplicationAuthMiddleware`; `nil` on paths that need no application.
    public var application: ApplicationGrant?
    /// What inner middleware learns and the request log, outside them, reports.
    let facts = RequestFacts()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
        application = nil
    }
}

/// Shared by every copy of one request's context: a middleware's changes to its context do not reach
/// the middleware outside it, but writes to this box do.
final class RequestFacts: Sendable {
    private let applicationName = Mutex<String?>(nil)
    private let refusedWhileLimitedFlag = Atomic<Bool>(false)

    /// The request was refused because its address is over the failed-attempt limit: it is counted in a
    /// summary, not logged on its own line, so that a flood of them cannot flood the log.
    var refusedWhileLimited: Bool {
        get { refusedWhileLimitedFlag.load(ordering: .relaxed) }
        set { refusedWhileLimitedFlag.store(newValue, ordering: .relaxed) }
    }

    /// The authenticated application's name, never its id.
    var application: String? {
        get { applicationName.withLock { $0 } }
        set { applicationName.withLock { $0 = newValue } }
    }
}

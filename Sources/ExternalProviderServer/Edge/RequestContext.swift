import ExternalProviderCore
import ExternalProviderStore
import Hummingbird
import NIOCore
import Synchronization

/// The request context: Hummingbird's core storage, the client's address (which the failed
/// application-id limiter counts by) and connection, and what the request learns on its way in.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection, for work that must stop when its client leaves (`ClientPresence`).
    let channel: any Channel
    let facts: RequestFacts

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
        facts = RequestFacts(clientAddress: remoteAddress?.ipAddress ?? "unknown")
    }
}

/// What one request learns on its way through: its id, the operation it is, the application it was
/// authenticated as, whether it was refused over the failed-attempt limit. One object per request: every
/// copy of its context shares it (a middleware's changes to its context do not reach the middleware
/// outside it, but writes to this do), and the generated handlers, which see no context, find it as
/// `RequestFacts.current`.
final class RequestFacts: Sendable {
    /// The request's facts, for code below `RequestLogMiddleware`, which binds it.
    @TaskLocal static var current: RequestFacts?

    /// The address the failed-attempt limiter counts by.
    let clientAddress: String

    private struct State {
        var id = ""
        var operation: String?
        var application: ApplicationGrant?
        var refusedWhileLimited = false
    }

    private let state = Mutex(State())

    init(clientAddress: String) {
        self.clientAddress = clientAddress
    }

    /// The request id, as echoed in `X-Request-ID`.
    var id: String {
        get { state.withLock { $0.id } }
        set { state.withLock { $0.id = newValue } }
    }

    /// What metrics count the request as (`create`, `relay`, …); `nil` until a route or operation says.
    var operation: String? {
        get { state.withLock { $0.operation } }
        set { state.withLock { $0.operation = newValue } }
    }

    /// The application the request was authenticated as; `nil` before, and on paths that need none.
    var application: ApplicationGrant? {
        get { state.withLock { $0.application } }
        set { state.withLock { $0.application = newValue } }
    }

    /// Refused because its address is over the failed-attempt limit: counted in a summary, not logged on
    /// its own line, so that a flood of them cannot flood the log.
    var refusedWhileLimited: Bool {
        get { state.withLock { $0.refusedWhileLimited } }
        set { state.withLock { $0.refusedWhileLimited = newValue } }
    }

    /// Where a change this request makes comes from, for the audit trail.
    var origin: ChangeOrigin { state.withLock { ChangeOrigin(application: $0.application?.name, requestID: $0.id) } }
}

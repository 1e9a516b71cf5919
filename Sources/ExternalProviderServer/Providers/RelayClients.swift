import AsyncHTTPClient
import Logging
import NIOCore

/// The relay's HTTP clients. Neither follows a redirect (it would take the key elsewhere), and a stream
/// may idle up to the relay timeout.
///
/// `pooled` keeps connections for reuse, closing one idle for `idleTimeout`: less than the 5 s after which
/// Node.js, uvicorn and Apache close an idle keep-alive connection, so that the pool rarely hands out one
/// the upstream has closed. When it does anyway (gunicorn closes after 2 s; any server may close one just
/// as it is picked), the request goes once more through `fresh`, whose every request says
/// `Connection: close` and so has a connection of its own, new and never reused.
struct RelayClients: Sendable {
    static let idleTimeout: TimeAmount = .seconds(3)

    /// What the HTTP clients log: nothing. Their trace lines hold upstream response heads and body bytes.
    static let quiet = Logger(label: "external-provider.upstream", factory: { _ in SwiftLogNoOpLogHandler() })

    let pooled: HTTPClient
    let fresh: HTTPClient

    init(timeout: TimeAmount, connectTimeout: TimeAmount, maxConnections: Int) {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: connectTimeout, read: timeout))
        configuration.connectionPool = .init(idleTimeout: Self.idleTimeout, concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        pooled = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration, backgroundActivityLogger: Self.quiet)
        fresh = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration, backgroundActivityLogger: Self.quiet)
    }

    /// Both, to shut down with the server.
    var all: [HTTPClient] { [pooled, fresh] }
}

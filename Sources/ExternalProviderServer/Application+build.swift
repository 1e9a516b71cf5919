import ExternalProviderAPI
import ExternalProviderStore
import Foundation
import Hummingbird
import Logging
import OpenAPIHummingbird

/// What `serve` needs to know; `main` and the tests both build the application from it.
public protocol AppArguments: Sendable {
    var host: String { get }
    var port: Int { get }
    var dataDirectory: String { get }
    var logLevel: Logger.Level { get }
}

/// The name of the SQLite file inside the data dir.
public let storeFileName = "external-provider.sqlite"

public func buildApplication(_ arguments: some AppArguments) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "external-provider")
    logger.logLevel = arguments.logLevel
    try DataDirectory.prepare(arguments.dataDirectory, logger: logger)
    let store = try SQLiteKeyStore(path: (arguments.dataDirectory as NSString).appendingPathComponent(storeFileName))
    let router = try buildRouter(store, logger: logger)
    return Application(
        router: router,
        configuration: .init(address: .hostname(arguments.host, port: arguments.port), serverName: nil),
        // Said only once listening, so that a start that fails prints nothing but its one error line.
        onServerRunning: { [logger] _ in
            logger.info("serving", metadata: ["data_dir": "\(arguments.dataDirectory)", "schema.migration": "\(store.schemaVersion)"])
        },
        logger: logger
    )
}

public func buildRouter(_ store: some KeyStore, logger: Logger) throws -> Router<BasicRequestContext> {
    let routes = RouteTable()
    let router = Router(options: .autoGenerateHeadEndpoints)
    router.add(middleware: ProtectiveHeadersMiddleware())
    router.add(middleware: PlainTextErrorMiddleware(routes: routes))
    router.add(middleware: LogRequestsMiddleware(.debug))

    router.get("/health") { _, _ in "ok" }
    routes.record(.get, "/health")
    router.get("/openapi.yaml") { _, _ in
        Response(
            status: .ok,
            headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try OpenAPIDocument.yaml()))
        )
    }
    routes.record(.get, "/openapi.yaml")

    let api = router.group().add(middleware: JSONBodyMiddleware())
    try ExternalProviderHandler(store: store).registerHandlers(
        on: RecordingTransport(base: api, table: routes),
        // Compact JSON: the runtime's default pretty-prints, which costs bytes on every answer.
        configuration: .init(jsonEncodingOptions: [.sortedKeys]),
        middlewares: [DecodingProblemMiddleware(logger: logger)]
    )
    return router
}

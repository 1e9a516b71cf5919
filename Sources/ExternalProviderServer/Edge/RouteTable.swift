import Hummingbird
import OpenAPIRuntime
import Synchronization

/// The paths the server answers and the methods each accepts, recorded as routes are registered, so a
/// wrong method on a known path can get 405 with an `Allow` header.
final class RouteTable: Sendable {
    private let routes = Mutex<[String: [HTTPRequest.Method]]>([:])

    func record(_ method: HTTPRequest.Method, _ path: String) {
        let path = path.hasPrefix("/") ? path : "/" + path
        // The router answers HEAD wherever it answers GET (`.autoGenerateHeadEndpoints`).
        let methods: [HTTPRequest.Method] = method == .get ? [.get, .head] : [method]
        routes.withLock { $0[path, default: []].append(contentsOf: methods) }
    }

    func methods(for path: String) -> [HTTPRequest.Method]? {
        routes.withLock { $0[path] }
    }

    /// Registers a route of the server's own (not of the spec) on `router`, records it, and names the
    /// operation metrics count its requests as. `prefix`: the path of the group `router` is, if any.
    func add(
        to router: some RouterMethods<AppRequestContext>, prefix: String = "", _ method: HTTPRequest.Method, _ path: String, operation: String,
        _ handler: @escaping @Sendable (Request, AppRequestContext) async throws -> Response
    ) {
        router.on(RouterPath(path), method: method) { request, context in
            context.facts.operation = operation
            return try await handler(request, context)
        }
        record(method, prefix + (path.hasPrefix("/") ? path : "/" + path))
    }
}

/// Registers OpenAPI operations on `base` and records each in `table`.
struct RecordingTransport<Base: ServerTransport>: ServerTransport {
    let base: Base
    let table: RouteTable

    func register(
        _ handler: @escaping @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        try base.register(handler, method: method, path: path)
        table.record(method, path)
    }
}

import Hummingbird

/// Counts and times every request by operation and status, for `/metrics`. The operation is named from
/// the route the router matched (never the path a client sent, which could carry anything), and a
/// relayed answer, which may stream for minutes, is timed to its last byte.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    /// The route templates the server registers, by the operation they are counted as.
    static func operation(forRoute route: String?) -> String {
        switch route {
        case "/external_provider/api_key/create": "create"
        case "/external_provider/api_key/update": "update"
        case "/external_provider/api_key/delete": "delete"
        case "/open_ai/models/list": "models"
        case "/health": "health"
        case "/ready": "ready"
        case "/metrics": "metrics"
        case "/openapi.yaml": "openapi"
        case let route? where route.hasPrefix(OpenAIRelay.pathPrefix + "/"): "relay"
        default: "unmatched"
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            var response = try await next(request, context)
            let status = Int(response.status.code)
            let operation = Self.operation(forRoute: context.endpointPath)
            // Every answer but the relay's is whole in memory once returned: timed now. Wrapping every body
            // to time its last byte cost 7% of a SQLite write's throughput, measured.
            guard operation == "relay" else {
                metrics.requestAnswered(operation: operation, status: status, duration: ContinuousClock.now - started)
                return response
            }
            let body = response.body
            // A relayed answer streams on: timed to its last byte, as Hummingbird's own `withPostWriteClosure`
            // does (which it keeps to itself).
            response.body = ResponseBody(contentLength: body.contentLength) { [metrics] writer in
                defer { metrics.requestAnswered(operation: operation, status: status, duration: ContinuousClock.now - started) }
                try await body.write(writer)
            }
            return response
        } catch {
            // Hummingbird answers these itself, below every middleware that could have turned them into a response.
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.requestAnswered(operation: Self.operation(forRoute: context.endpointPath), status: status, duration: ContinuousClock.now - started)
            throw error
        }
    }
}

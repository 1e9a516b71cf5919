import Hummingbird
import Logging

/// One debug line per request: method, path, status and duration. Only the path: a query string, the
/// headers (the application id among them) and the body may all carry secrets, so none is logged.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        context.logger.debug(
            "request",
            metadata: [
                "http.method": "\(request.method.rawValue)",
                "http.path": "\(request.uri.path)",
                "http.status": "\(response.status.code)",
                "duration_ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
            ]
        )
        return response
    }
}

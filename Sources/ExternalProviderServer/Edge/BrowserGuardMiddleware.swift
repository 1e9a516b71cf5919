import HTTPTypes
import Hummingbird

/// Keeps web pages out: a Host that is not this server (DNS rebinding) or an Origin not on the allow
/// list gets 403 before anything else is looked at. Preflights are answered for allowed origins only.
/// It sits outside `PlainTextErrorMiddleware`, so every answer to an allowed origin, errors included,
/// carries the CORS headers that let the page read it.
struct BrowserGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    static var hostField: HTTPField.Name { HTTPField.Name("Host")! }

    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // HTTP/1.1 carries Host as the request's authority; a request without one is not from a browser.
        if let host = request.head.authority ?? request.headers[Self.hostField], !policy.allowsHost(host) {
            return Problem.forbiddenHost.response(to: request)
        }
        guard let origin = request.headers[.origin] else {
            return try await next(request, context)
        }
        guard policy.allowsOrigin(origin) else { return Problem.forbiddenOrigin.response(to: request) }
        var response: Response
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            response = Response(status: .noContent, headers: [
                .accessControlAllowMethods: "POST",
                .accessControlAllowHeaders: "Content-Type, X-Application-ID",
                .accessControlMaxAge: "600",
            ])
        } else {
            response = try await next(request, context)
        }
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
        return response
    }
}

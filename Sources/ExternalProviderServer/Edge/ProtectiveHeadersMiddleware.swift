import HTTPTypes
import Hummingbird

/// Every answer, 200 or not, may describe someone's key: no cache keeps it and no browser sniffs it.
struct ProtectiveHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    static var headers: HTTPFields {
        [.cacheControl: "no-store", HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        for field in Self.headers where response.headers[field.name] == nil {
            response.headers.append(field)
        }
        return response
    }
}

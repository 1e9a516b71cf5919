import ExternalProviderCore
import ExternalProviderStore
import Hummingbird
import OpenAPIRuntime
import Logging

/// The outermost middleware and the one fault path: whatever fails below it, the client gets a
/// text/plain sentence, and a request to a known path with the wrong method gets 405 instead of the
/// router's 404. A store that cannot be reached is 503; any other fault is logged and answered 500.
struct PlainTextErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable
    /// Counts store errors; `nil` with `--no-metrics`.
    var metrics: ServerMetrics? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return answer(to: Self.unwrapped(error), request: request, context: context)
        }
    }

    /// The OpenAPI runtime wraps what an operation or its middleware throws in a `ServerError`, whose
    /// description holds the whole request, headers and all (the application id among them): only what
    /// it wraps is classified and logged.
    static func unwrapped(_ error: any Error) -> any Error {
        var error = error
        while let wrapped = error as? ServerError { error = wrapped.underlyingError }
        return error
    }

    private func answer(to error: any Error, request: Request, context: Context) -> Response {
        switch error {
        case let problem as Problem:
            return problem.response(to: request)
        case let error as any HTTPResponseError:
            if error.status == .notFound, let allowed = routes.methods(for: request.uri.path) {
                return Problem.methodNotAllowed(allowed).response(to: request)
            }
            if error.status == .notFound {
                return Problem.notFound.response(to: request)
            }
            return Problem(error.status, "\(error.status.reasonPhrase).").response(to: request)
        default:
            return fault(error, context: context).response(to: request)
        }
    }

    private func fault(_ error: any Error, context: Context) -> Problem {
        if let unavailable = error as? StoreUnavailable {
            context.logger.warning("store unavailable", metadata: ["error": "\(unavailable)"])
            metrics?.storeFailed(.unavailable)
            return .storeUnavailable
        }
        if error.isStoreFault { metrics?.storeFailed(.fault) }
        // The type and description of a fault are safe to log: no error type below carries request data.
        context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
        return .internalServerError
    }
}

import Hummingbird

/// Counts and times every request by operation and status, for `/metrics`. The operation is the name
/// its route or its generated operation gave it (`RequestFacts.operation`), never the path a client
/// sent, which could carry anything; a request that matched none is `unmatched`. A relayed answer, which
/// may stream for minutes, is timed to its last byte.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let metrics: ServerMetrics
    static let unmatched = "unmatched"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            var response = try await next(request, context)
            let status = Int(response.status.code)
            let operation = context.facts.operation ?? Self.unmatched
            // Every answer but the relay's is whole in memory once returned: timed now, since wrapping every
            // body to time its last byte costs throughput on every request.
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
            metrics.requestAnswered(operation: context.facts.operation ?? Self.unmatched, status: status, duration: ContinuousClock.now - started)
            throw error
        }
    }
}

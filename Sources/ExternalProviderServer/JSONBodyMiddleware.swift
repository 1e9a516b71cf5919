import Foundation
import Hummingbird
import NIOCore

/// Checks what can be checked before any parsing, in the contract's order: Content-Type (415), then size
/// (413), then presence of a body (400). It buffers the body so that the OpenAPI layer decodes it in one go.
struct JSONBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.headers[.contentType] == nil, Self.hasNoBody(request) {
            // Nothing was sent, so there is no wrong type to speak of: what is missing is the body.
            throw Problem.missingBody
        }
        guard Self.isJSON(request.headers[.contentType]) else { throw Problem.unsupportedMediaType }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > Problem.maxBodyBytes {
            throw Problem.contentTooLarge
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Problem.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            // A body with no declared length (chunked) that runs past the limit.
            throw Problem.contentTooLarge
        }
        guard body.readableBytes > 0 else { throw Problem.missingBody }
        return try await next(request, context)
    }

    private static func hasNoBody(_ request: Request) -> Bool {
        guard let length = request.headers[.contentLength] else { return request.headers[.transferEncoding] == nil }
        return length == "0"
    }

    /// `application/json`, with no parameter or a UTF-8 charset (JSON is UTF-8 by RFC 8259).
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        var parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard parts.first == "application/json" else { return false }
        parts.removeFirst()
        return parts.allSatisfy { $0 == "charset=utf-8" || $0 == "charset=\"utf-8\"" }
    }
}

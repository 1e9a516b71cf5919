import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime

/// Turns what the generated code throws into our answers: a body it cannot decode becomes a 400 that
/// names the field. Any other failure goes on, unwrapped, to the one fault path (`PlainTextErrorMiddleware`).
struct DecodingProblemMiddleware: ServerMiddleware {
    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        // Errors are always text/plain; without this the generated serializer turns a 4xx into a 500 for a
        // client that sends `Accept: application/json` only.
        var request = request
        request.headerFields[.accept] = nil
        // JSONBodyMiddleware has already bounded the body; keep its bytes to explain a decoding failure.
        var bytes: Data?
        if let body { bytes = try await Data(collecting: body, upTo: Problem.maxBodyBytes) }
        do {
            return try await next(request, bytes.map { HTTPBody($0) }, metadata)
        } catch let error as ServerError {
            if let decoding = error.underlyingError as? DecodingError {
                return Problem.badRequest(Self.message(for: decoding, body: bytes)).openAPIResponse
            }
            throw error.underlyingError
        }
    }

    /// One sentence naming the JSON field at fault. It never quotes the value, which may be a key.
    static func message(for error: DecodingError, body: Data?) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "Field '\(path(context.codingPath + [key]))' is required."
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return "The request body must be a JSON object." }
            return "Field '\(path(context.codingPath))' must be \(describe(type))."
        case .valueNotFound(let type, let context):
            if context.codingPath.isEmpty { return "The request body must be a JSON object." }
            return "Field '\(path(context.codingPath))' must be \(describe(type)), not null."
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                // Foundation reports a fraction or an out-of-range number for an integer field without
                // its path; every number this API takes is an integer, so the first other number is at fault.
                if let body, let field = firstNonIntegerNumber(in: body) {
                    return "Field '\(field)' must be an integer."
                }
                return "The request body is not valid JSON."
            }
            return "Field '\(path(context.codingPath))' has a value that is not allowed."
        @unknown default:
            return "The request body is not valid JSON."
        }
    }

    private static func firstNonIntegerNumber(in body: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) else { return nil }
        func search(_ value: Any, _ path: [String]) -> String? {
            switch value {
            case let object as [String: Any]:
                for key in object.keys.sorted() {
                    if let found = search(object[key]!, path + [key]) { return found }
                }
                return nil
            case let array as [Any]:
                for (index, element) in array.enumerated() {
                    if let found = search(element, path + ["[\(index)]"]) { return found }
                }
                return nil
            case is Bool, is String:
                return nil
            case let number as NSNumber:
                return Int(exactly: number.doubleValue) == nil || abs(number.doubleValue) > 9.0e15 ? path.joined(separator: ".") : nil
            default:
                return nil
            }
        }
        return search(root, [])
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        default: "a JSON object"
        }
    }
}

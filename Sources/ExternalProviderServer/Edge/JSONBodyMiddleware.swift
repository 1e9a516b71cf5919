import ExternalProviderAPI
import ExternalProviderStore
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Checks an operation's body before the generated code decodes it, in the contract's order:
/// Content-Type (415), then size (413), then presence (400). It collects the body once, and turns a body
/// the generated code cannot decode into a 400 that names the field.
struct JSONBodyMiddleware: ServerMiddleware {
    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard OperationMiddleware.policy(of: operationID)?.takesBody ?? true else { return try await next(request, body, metadata) }
        let contentType = request.headerFields[.contentType]
        if contentType == nil, Self.hasNoBody(request) {
            // Nothing was sent, so there is no wrong type to speak of: what is missing is the body.
            throw Problem.missingBody
        }
        guard Self.isJSON(contentType) else { throw Problem.unsupportedMediaType }
        if let declared = request.headerFields[.contentLength].flatMap(Int.init), declared > Problem.maxBodyBytes {
            throw Problem.contentTooLarge
        }
        var bytes: [UInt8] = []
        if let body {
            // A body with no declared length (chunked) is counted as it arrives.
            for try await chunk in body {
                guard bytes.count + chunk.count <= Problem.maxBodyBytes else { throw Problem.contentTooLarge }
                bytes.append(contentsOf: chunk)
            }
        }
        guard !bytes.isEmpty else { throw Problem.missingBody }
        // Errors are always text/plain; without this the generated serializer turns a 4xx into a 500 for a
        // client that sends `Accept: application/json` only.
        var request = request
        request.headerFields[.accept] = nil
        do {
            return try await next(request, HTTPBody(bytes), metadata)
        } catch let error as ServerError {
            if let decoding = error.underlyingError as? DecodingError {
                throw Problem.badRequest(Self.message(for: decoding, body: Data(bytes)))
            }
            throw error.underlyingError
        }
    }

    private static func hasNoBody(_ request: HTTPRequest) -> Bool {
        guard let length = request.headerFields[.contentLength] else { return request.headerFields[.transferEncoding] == nil }
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

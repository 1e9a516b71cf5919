import AsyncHTTPClient
import ExternalProviderCore
import Foundation
import Hummingbird
import NIOCore

/// A provider's model list as an application limited to some models sees it: only those it may call.
/// The lists of every provider are an array of objects under `data` (OpenAI's protocol, Anthropic's,
/// each named by `id`) or `models` (Gemini's, each named by `name`, `models/gemini-2.5-flash`).
enum ModelListFilter {
    /// More than any provider's list; a longer answer is refused rather than passed unfiltered.
    static let maxBytes = 8 * 1024 * 1024

    /// A listed model's id: OpenAI's and Anthropic's `id`; Gemini's `name` without `models/` or `tunedModels/`.
    private static func id(of model: [String: Any]) -> String? {
        if let id = model["id"] as? String { return id }
        guard let name = model["name"] as? String else { return nil }
        for prefix in ["models/", "tunedModels/"] where name.hasPrefix(prefix) { return String(name.dropFirst(prefix.count)) }
        return name
    }

    static func filtered(_ response: HTTPClientResponse, for policy: ApplicationPolicy) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw Problem(.badGateway, "The provider's model list is too long to filter for this application's models.")
        }
        guard var object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            throw Problem(.badGateway, "The provider's model list could not be read to filter it for this application's models.")
        }
        for field in ["data", "models", "tunedModels"] {
            guard let models = object[field] as? [[String: Any]] else { continue }
            let kept = models.filter { model in id(of: model).map(policy.allows(model:)) ?? false }
            object[field] = kept
            // Anthropic's page names its first and last model.
            if object["first_id"] != nil { object["first_id"] = kept.first.flatMap(id(of:)) ?? NSNull() }
            if object["last_id"] != nil { object["last_id"] = kept.last.flatMap(id(of:)) ?? NSNull() }
        }
        let filtered = try JSONSerialization.data(withJSONObject: object)
        var headers = RelayHeaders.passedBack(response.headers)
        headers[.contentType] = "application/json"
        return Response(
            status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: filtered)))
    }
}

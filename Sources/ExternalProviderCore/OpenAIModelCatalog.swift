import Foundation

/// How PiecesOS describes an OpenAI model, derived from its id alone (OpenAI's model list says little
/// else). The rules are prefix rules on ids OpenAI uses today; an unknown id still gets a valid answer.
public struct ModelDescription: Sendable, Equatable {
    public enum Foundation: Sendable, Equatable { case gpt35, gpt4, gptLatest }
    public enum Usage: Sendable, Equatable { case conversation, embedding, unknown }
    public enum Kind: Sendable, Equatable { case speed, balanced, accuracy, unknown }

    public let foundation: Foundation?
    public let usage: Usage
    public let kind: Kind
    /// The snapshot date of a pinned id (`gpt-4o-2024-08-06` → `2024-08-06`), else `latest`.
    public let version: String

    public init(foundation: Foundation?, usage: Usage, kind: Kind, version: String) {
        self.foundation = foundation
        self.usage = usage
        self.kind = kind
        self.version = version
    }
}

public enum OpenAIModelCatalog {
    public static func describe(_ id: String) -> ModelDescription {
        let id = id.lowercased()
        let chat = ["gpt-", "chatgpt-", "o1", "o3", "o4"].contains { id.hasPrefix($0) }
            && !["-tts", "-transcribe", "-realtime", "-audio", "-image", "-search"].contains { id.contains($0) }
        let usage: ModelDescription.Usage =
            id.hasPrefix("text-embedding-") ? .embedding : chat ? .conversation : .unknown
        let kind: ModelDescription.Kind
        if usage != .conversation {
            kind = .unknown
        } else if id.contains("mini") || id.contains("nano") || id.hasPrefix("gpt-3.5") {
            kind = .speed
        } else if ["o1", "o3", "o4"].contains(where: { id.hasPrefix($0) }) || id.contains("-pro") {
            kind = .accuracy
        } else {
            kind = .balanced
        }
        return ModelDescription(foundation: foundation(id), usage: usage, kind: kind, version: snapshot(id) ?? "latest")
    }

    private static func foundation(_ id: String) -> ModelDescription.Foundation? {
        if id.hasPrefix("gpt-3.5") { return .gpt35 }
        if id.hasPrefix("gpt-4") || id.hasPrefix("chatgpt-4o") { return .gpt4 }
        if id.hasPrefix("gpt-5") { return .gptLatest }
        return nil
    }

    /// A trailing `-YYYY-MM-DD` (or OpenAI's older `-MMDD`).
    private static func snapshot(_ id: String) -> String? {
        if let match = id.firstMatch(of: /-(\d{4}-\d{2}-\d{2})$/) { return String(match.output.1) }
        if let match = id.firstMatch(of: /-(\d{4})$/) { return String(match.output.1) }
        return nil
    }
}

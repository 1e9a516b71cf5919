import Foundation

/// Tokens an answer used, as the provider reported them. `input` counts every input token, cached ones
/// included; `cached` those of them read from a cache.
public struct TokenUsage: Sendable, Equatable {
    public var input: Int?
    public var output: Int?
    public var cached: Int?

    public init(input: Int? = nil, output: Int? = nil, cached: Int? = nil) {
        self.input = input
        self.output = output
        self.cached = cached
    }

    /// Input and output together: what a budget counts.
    public var total: Int { (input ?? 0) + (output ?? 0) }

    public var isEmpty: Bool { input == nil && output == nil && cached == nil }

    /// `later`'s counts where it has them, these where it has not: a stream's later events carry the
    /// counts that grew (Anthropic's output in `message_delta`, Gemini's totals in every event).
    mutating func merge(_ later: TokenUsage) {
        input = later.input ?? input
        output = later.output ?? output
        cached = later.cached ?? cached
    }

    /// The usage in one of the providers' JSON objects, wherever its kind puts it:
    /// - OpenAI's protocol: `usage.prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`
    ///   (and the Responses API's `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`),
    ///   at the top or under `response` (`response.completed`);
    /// - Anthropic's: `usage` or `message.usage`, `input_tokens` (without cached ones, so
    ///   `cache_creation_input_tokens` and `cache_read_input_tokens` are added), `output_tokens`,
    ///   `cache_read_input_tokens`;
    /// - Gemini's: `usageMetadata.promptTokenCount`, `candidatesTokenCount` (and `thoughtsTokenCount`),
    ///   `cachedContentTokenCount`.
    public static func reported(in object: [String: Any]) -> TokenUsage? {
        if let metadata = object["usageMetadata"] as? [String: Any] {
            let candidates = integer(metadata["candidatesTokenCount"])
            let thoughts = integer(metadata["thoughtsTokenCount"])
            return TokenUsage(
                input: integer(metadata["promptTokenCount"]),
                output: candidates.map { $0 + (thoughts ?? 0) } ?? thoughts,
                cached: integer(metadata["cachedContentTokenCount"]))
        }
        // Groq's streams put it under `x_groq`.
        let usage = (object["usage"] as? [String: Any])
            ?? ["message", "response", "x_groq"].lazy.compactMap { ((object[$0] as? [String: Any])?["usage"] as? [String: Any]) }.first
        guard let usage else { return nil }
        if usage["prompt_tokens"] != nil || usage["completion_tokens"] != nil {
            return TokenUsage(
                input: integer(usage["prompt_tokens"]), output: integer(usage["completion_tokens"]),
                cached: integer((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"]))
        }
        let creation = integer(usage["cache_creation_input_tokens"])
        let read = integer(usage["cache_read_input_tokens"])
        if creation != nil || read != nil {
            // Anthropic's input_tokens leaves out the tokens written to and read from its cache.
            let input = integer(usage["input_tokens"]).map { $0 + (creation ?? 0) + (read ?? 0) }
            return TokenUsage(input: input, output: integer(usage["output_tokens"]), cached: read)
        }
        let found = TokenUsage(
            input: integer(usage["input_tokens"]), output: integer(usage["output_tokens"]),
            cached: integer((usage["input_tokens_details"] as? [String: Any])?["cached_tokens"]))
        return found.isEmpty ? nil : found
    }

    /// A count as reported: a whole number from 0 to a trillion, so that no sum of a few overflows and
    /// no answer can take tokens off a budget.
    private static func integer(_ value: Any?) -> Int? {
        switch value {
        case let number as Int where (0...maxCount).contains(number): number
        case let number as Double where number >= 0 && number <= Double(maxCount): Int(number)
        default: nil
        }
    }

    static let maxCount = 1_000_000_000_000
}

/// Reads the usage a provider reports in an answer as it passes, without holding the answer or parsing
/// its text: every provider puts the usage at the end of an answer (and of a server-sent event), so only
/// the last `tailBytes` of a JSON answer, and of each event line, are kept, and from them only the last
/// `"usage": {…}` (or `"usageMetadata"`) object is parsed, wherever it is nested. So an embedding of many
/// inputs, or an answer with log-probabilities, costs no more to read than a short one. The answer itself
/// passes on as it came.
public struct UsageMeter: Sendable {
    /// What is kept of an answer, or of an event line.
    static let tailBytes = 64 * 1024

    private let streamed: Bool
    private let reading: Bool
    private var pending: [UInt8] = []
    /// The answer, or the event line, ran past `tailBytes`: `pending` holds its tail only.
    private var overflowed = false
    public private(set) var usage = TokenUsage()

    /// `contentType`: the answer's; `text/event-stream` is read event by event. Not `reading`: the
    /// meter reads nothing and reports no usage.
    public init(contentType: String?, reading: Bool = true) {
        streamed = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
        self.reading = reading
    }

    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        guard reading else { return }
        guard streamed else {
            // Every provider puts an answer's usage at its end: only the tail is kept.
            keep(bytes[...], bound: Self.tailBytes)
            return
        }
        var lineStart = bytes.startIndex
        while let newline = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            keep(bytes[lineStart..<newline], bound: Self.tailBytes)
            endLine()
            lineStart = newline + 1
        }
        keep(bytes[lineStart...], bound: Self.tailBytes)
    }

    /// Appends to `pending`; past `bound`, keeps only the last `tailBytes`.
    private mutating func keep(_ bytes: Slice<UnsafeRawBufferPointer>, bound: Int) {
        guard !bytes.isEmpty else { return }
        pending.append(contentsOf: bytes)
        if !overflowed, pending.count <= bound { return }
        overflowed = true
        if pending.count > 2 * Self.tailBytes { pending.removeFirst(pending.count - Self.tailBytes) }
    }

    private mutating func endLine() {
        // An event's usage is read only if its line is data (or too long to tell).
        if overflowed || pending.starts(with: Self.dataPrefix) { readTail() }
        pending.removeAll(keepingCapacity: true)
        overflowed = false
    }

    /// The usage reported, once the answer has ended.
    public mutating func finish() -> TokenUsage {
        if streamed {
            if !pending.isEmpty { endLine() }
        } else {
            readTail()
        }
        pending = []
        return usage
    }

    private static let usageKey = Array("\"usage".utf8)

    /// The last `"usage": {…}` (or `"usageMetadata"`) in what is kept, wherever it is nested, read as an
    /// object of its own: the rest of an answer, its text, is never parsed.
    private mutating func readTail() {
        let bytes = pending
        var searchEnd = bytes.count
        while let start = Self.lastIndex(of: Self.usageKey, in: bytes[..<searchEnd]) {
            searchEnd = start
            guard let keyEnd = bytes[(start + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { continue }
            let key = String(decoding: bytes[(start + 1)..<keyEnd], as: UTF8.self)
            guard key == "usage" || key == "usageMetadata" else { continue }
            var index = keyEnd + 1
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { continue }
            index += 1
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
            guard let end = Self.objectEnd(bytes, from: index),
                let object = try? JSONSerialization.jsonObject(with: Data(bytes[index..<end])) as? [String: Any],
                let reported = TokenUsage.reported(in: [key: object])
            else { continue }
            usage.merge(reported)
            return
        }
    }

    /// The index after the object that starts at `start`, minding strings; `nil` if it does not end here.
    private static func objectEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { return nil }
        var depth = 0
        var inString = false
        var escaped = false
        for index in start..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return index + 1 }
            default: break
            }
        }
        return nil
    }

    private static func lastIndex(of needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.endIndex - needle.count
        while index >= haystack.startIndex {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index -= 1
        }
        return nil
    }

    private static let dataPrefix = Array("data:".utf8)
}

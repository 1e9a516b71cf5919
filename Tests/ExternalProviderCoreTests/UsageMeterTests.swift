import ExternalProviderCore
import Foundation
import Testing

@Suite("Reading the usage an answer reports as it passes")
struct UsageMeterTests {
    /// Feeds `answer` in pieces of `size` bytes, as it may arrive.
    func metered(_ answer: String, contentType: String, size: Int = 7) -> TokenUsage {
        var meter = UsageMeter(contentType: contentType)
        let bytes = Array(answer.utf8)
        for start in stride(from: 0, to: bytes.count, by: size) {
            bytes[start..<min(bytes.count, start + size)].withUnsafeBytes { meter.consume($0) }
        }
        return meter.finish()
    }

    @Test("OpenAI: usage in a JSON answer, and in a stream's last chunk when asked", arguments: [1, 7, 4096])
    func openAI(size: Int) {
        let json = #"{"id":"x","choices":[],"usage":{"prompt_tokens":23,"completion_tokens":8,"total_tokens":31,"prompt_tokens_details":{"cached_tokens":5}}}"#
        #expect(metered(json, contentType: "application/json", size: size) == TokenUsage(input: 23, output: 8, cached: 5))
        let stream = """
            data: {"choices":[{"delta":{"content":"Hi"}}]}

            data: {"choices":[],"usage":{"prompt_tokens":23,"completion_tokens":8,"prompt_tokens_details":{"cached_tokens":5}}}

            data: [DONE]


            """
        #expect(metered(stream, contentType: "text/event-stream; charset=utf-8", size: size) == TokenUsage(input: 23, output: 8, cached: 5))
        #expect(metered("data: {\"choices\":[]}\n\ndata: [DONE]\n\n", contentType: "text/event-stream", size: size).isEmpty)
    }

    @Test("Anthropic: message_start's input, message_delta's final output; cache reads and writes are input", arguments: [1, 7, 4096])
    func anthropic(size: Int) {
        let stream = """
            event: message_start\r
            data: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1,"cache_creation_input_tokens":2,"cache_read_input_tokens":3}}}\r
            \r
            event: content_block_delta\r
            data: {"type":"content_block_delta","delta":{"text":"usage"}}\r
            \r
            event: message_delta\r
            data: {"type":"message_delta","usage":{"output_tokens":7}}\r
            \r

            """
        #expect(metered(stream, contentType: "text/event-stream", size: size) == TokenUsage(input: 16, output: 7, cached: 3))
        let json = #"{"type":"message","usage":{"input_tokens":11,"output_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":3}}"#
        #expect(metered(json, contentType: "application/json", size: size) == TokenUsage(input: 14, output: 7, cached: 3))
    }

    @Test("Gemini: every event's usageMetadata, the last one final; thoughts are output; a JSON array too")
    func gemini() {
        let stream = """
            data: {"candidates":[],"usageMetadata":{"promptTokenCount":13,"candidatesTokenCount":1,"cachedContentTokenCount":2}}

            data: {"candidates":[],"usageMetadata":{"promptTokenCount":13,"candidatesTokenCount":5,"thoughtsTokenCount":4,"cachedContentTokenCount":2}}


            """
        #expect(metered(stream, contentType: "text/event-stream") == TokenUsage(input: 13, output: 9, cached: 2))
        let array = #"[{"usageMetadata":{"promptTokenCount":13,"candidatesTokenCount":1}},{"usageMetadata":{"promptTokenCount":13,"candidatesTokenCount":5}}]"#
        #expect(metered(array, contentType: "application/json") == TokenUsage(input: 13, output: 5, cached: nil))
    }

    @Test("Groq's stream puts it under x_groq; Mistral's last chunk carries it unasked")
    func openAIStyle() {
        let groq = #"data: {"choices":[{"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"prompt_tokens":19,"completion_tokens":6}}}"# + "\n\n"
        #expect(metered(groq, contentType: "text/event-stream") == TokenUsage(input: 19, output: 6, cached: nil))
        let mistral = #"data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":17,"completion_tokens":9}}"# + "\n\n"
        #expect(metered(mistral, contentType: "text/event-stream") == TokenUsage(input: 17, output: 9, cached: nil))
    }

    @Test("an answer, or an event, past the bound is read by its tail, where every provider puts its usage")
    func longAnswers() {
        let floats = "[" + Array(repeating: "0.0123456789", count: 150_000).joined(separator: ",") + "]"
        let embeddings = #"{"object":"list","data":[{"embedding":"# + floats + #"}],"model":"text-embedding-3-small","usage":{"prompt_tokens":256000,"total_tokens":256000}}"#
        #expect(embeddings.utf8.count > 1024 * 1024)
        #expect(metered(embeddings, contentType: "application/json", size: 65536) == TokenUsage(input: 256000, output: nil, cached: nil))
        let completed = "event: response.completed\ndata: " + #"{"type":"response.completed","response":{"output":["# + floats + #"],"usage":{"input_tokens":12,"output_tokens":3000,"input_tokens_details":{"cached_tokens":0}}}}"# + "\n\n"
        #expect(metered(completed, contentType: "text/event-stream", size: 65536) == TokenUsage(input: 12, output: 3000, cached: 0))
    }

    @Test("counts outside 0 to a trillion are no counts: an answer can neither overflow a sum nor take tokens off a budget")
    func hostileCounts() {
        #expect(metered(#"{"usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":1,"output_tokens":2}}"#, contentType: "application/json")
            == TokenUsage(input: nil, output: 2, cached: 1))
        #expect(metered(#"{"usage":{"prompt_tokens":-1000000000000,"completion_tokens":5}}"#, contentType: "application/json").total == 5)
        #expect(metered(#"{"usage":{"prompt_tokens":1e300}}"#, contentType: "application/json").isEmpty)
    }

    @Test("an answer with no usage, too long to read, or not JSON is recorded with no tokens")
    func none() {
        #expect(metered(#"{"object":"list","data":[]}"#, contentType: "application/json").isEmpty)
        #expect(metered("not json", contentType: "text/plain").isEmpty)
        let long = #"{"usage":{"prompt_tokens":1},"pad":""# + String(repeating: "x", count: 1024 * 1024) + #""}"#
        #expect(metered(long, contentType: "application/json", size: 65536).isEmpty)
        // A line past the bound is skipped; the meter reads the events after it.
        let stream = "data: " + String(repeating: "y", count: 1024 * 1024 + 10) + "\n\n" + #"data: {"usage":{"prompt_tokens":2,"completion_tokens":3}}"# + "\n\n"
        #expect(metered(stream, contentType: "text/event-stream", size: 65536) == TokenUsage(input: 2, output: 3, cached: nil))
    }
}

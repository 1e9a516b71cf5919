import ExternalProviderCore
import Foundation
import Testing

@Suite("Reading the model a relayed request names")
struct ModelInRequestTests {
    func read(_ json: String) -> RequestedModel { ModelField.read(Array(json.utf8)) }

    @Test("the top-level model, escapes decoded; nested ones are not it")
    func topLevel() {
        #expect(read(#"{"model":"gpt-4o","messages":[]}"#) == .named("gpt-4o"))
        #expect(read(#" { "messages": [{"model": "inner"}], "model" : "gpt-4o" } "#) == .named("gpt-4o"))
        #expect(read(#"{"model":"gpt-\u0034o"}"#) == .named("gpt-4o"))
        #expect(read(#"{"\u006dodel":"gpt-4o"}"#) == .named("gpt-4o"))
        #expect(read(#"{"metadata":{"model":"x"},"model":"claude-\"quoted\""}"#) == .named(#"claude-"quoted""#))
        #expect(read(#"{"model":"\ud83d\ude00"}"#) == .named("😀"))
    }

    @Test("model given twice, in any spelling a parser might read as it, is refused")
    func twice() {
        #expect(read(#"{"model":"gpt-4o-mini","model":"gpt-5"}"#) == .unreadable(.twice))
        #expect(read(#"{"model":"gpt-4o-mini","\u006dodel":"gpt-5"}"#) == .unreadable(.twice))
        #expect(read(#"{"model":"gpt-4o-mini","Model":"gpt-5"}"#) == .unreadable(.twice))
        #expect(read(#"{"MODEL":"gpt-5","model":"gpt-4o-mini"}"#) == .unreadable(.twice))
    }

    @Test("not JSON, no model, a model that is not a string, trailing bytes")
    func unreadable() {
        #expect(read("model=gpt-4o") == .unreadable(.notJSON))
        #expect(read(#"{"messages":[]}"#) == .unreadable(.missing))
        #expect(read(#"{"model":4}"#) == .unreadable(.notJSON))
        #expect(read(#"{"model":"gpt-4o"} {"model":"gpt-5"}"#) == .unreadable(.notJSON))
        #expect(read(#"{"model":"gpt-4o""#) == .unreadable(.notJSON))
        #expect(read(#"["model","gpt-4o"]"#) == .unreadable(.notJSON))
    }

    func relayed(_ provider: Provider, _ method: String, _ path: String, _ body: String? = nil, whole: Bool = true) -> RelayedRequest {
        provider.profile.relayedRequest(
            method: method, segments: path.split(separator: "/").map(String.init), body: body.map { Array($0.utf8) } ?? [], bodyWhole: whole)
    }

    @Test("each provider: the body's model, Gemini's in the path, listings, files and batches")
    func perProvider() {
        let body = #"{"model":"m-1"}"#
        #expect(relayed(.openAI, "POST", "chat/completions", body).model == .named("m-1"))
        #expect(relayed(.anthropic, "POST", "v1/messages", body).model == .named("m-1"))
        #expect(relayed(.openAI, "GET", "models").model == .listing)
        #expect(relayed(.openAI, "GET", "models/gpt-4o").model == .named("gpt-4o"))
        #expect(relayed(.openAI, "POST", "files", "--multipart").model == .none)
        #expect(relayed(.openAI, "POST", "batches", body).model == .batch)
        #expect(relayed(.openAI, "POST", "chat/completions", body, whole: false).model == .unreadable(.tooLong))
        #expect(relayed(.openAI, "POST", "audio/transcriptions", "--x").model == .unreadable(.notJSON))
        #expect(relayed(.gemini, "POST", "v1beta/models/gemini-2.5-flash:generateContent").model == .named("gemini-2.5-flash"))
        #expect(relayed(.gemini, "POST", "v1/models/a:x/models/b:streamGenerateContent").model == .unreadable(.twice))
        #expect(relayed(.gemini, "GET", "v1beta/models").model == .listing)
        #expect(relayed(.gemini, "GET", "v1alpha/models").model == .listing)
        #expect(relayed(.gemini, "POST", "v1beta/cachedContents", #"{"model":"models/gemini-2.5-pro"}"#).model == .named("gemini-2.5-pro"))
        // A Gemini path with no model in it must name one in its body, as the others must.
        #expect(relayed(.gemini, "POST", "v1beta/openai/chat/completions", "\u{1f}\u{8b}gzip").model == .unreadable(.notJSON))
        #expect(relayed(.gemini, "POST", "v1beta/tunedModels/mine:generateContent").model == .named("mine"))
    }

    @Test("what spends tokens its answer does not report, and what makes a credential past the limits")
    func uncounted() {
        let stream = #"{"model":"gpt-4o","stream":true}"#
        let asked = #"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#
        #expect(relayed(.openAI, "POST", "chat/completions", stream).uncounted == .streamWithoutUsage)
        #expect(relayed(.openAI, "POST", "chat/completions", asked).uncounted == nil)
        #expect(relayed(.openAI, "POST", "chat/completions", #"{"model":"gpt-4o"}"#).uncounted == nil)
        // Given twice, an include_usage counts only if every one says true; a stream if any does.
        #expect(relayed(.openAI, "POST", "chat/completions", #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_usage":false}}"#)
            .uncounted == .streamWithoutUsage)
        #expect(relayed(.openAI, "POST", "chat/completions", #"{"model":"m","stream":true,"stream":false}"#).uncounted == .streamWithoutUsage)
        #expect(relayed(.openAI, "POST", "chat/completions", "not json").uncounted == .streamWithoutUsage)
        #expect(relayed(.openAI, "POST", "responses", stream).uncounted == nil)
        #expect(relayed(.openAI, "POST", "responses", #"{"model":"gpt-4o","background":true}"#).uncounted == .background)
        #expect(relayed(.openAI, "POST", "threads/runs", #"{"assistant_id":"a"}"#).uncounted == .later)
        #expect(relayed(.anthropic, "POST", "v1/messages/batches", #"{"requests":[]}"#).uncounted == .later)
        #expect(relayed(.gemini, "POST", "v1beta/models/gemini-2.5-flash:batchGenerateContent").uncounted == .later)
        #expect(relayed(.mistral, "POST", "chat/completions", stream).uncounted == nil)
        #expect(relayed(.groq, "POST", "chat/completions", stream).uncounted == nil)
        #expect(relayed(.openAI, "POST", "realtime/client_secrets", #"{"session":{}}"#).mintsCredential)
        #expect(relayed(.gemini, "POST", "v1alpha/auth_tokens", #"{"uses":1}"#).mintsCredential)
        #expect(!relayed(.openAI, "POST", "chat/completions", asked).mintsCredential)
        #expect(relayed(.openAI, "POST", "responses", #"{"model":"gpt-4o","tools":[{"type":"image_generation","model":"gpt-image-1"}]}"#)
            .otherModels == ["gpt-image-1"])
    }
}

@Suite("Application policies")
struct ApplicationPolicyTests {
    @Test("globs: * any run, ? one character, everything else itself, byte for byte")
    func globs() throws {
        let glob = try ModelGlob("gpt-4o*")
        #expect(glob.matches("gpt-4o") && glob.matches("gpt-4o-mini") && !glob.matches("gpt-4") && !glob.matches("GPT-4o"))
        #expect(try ModelGlob("claude-*-4-?").matches("claude-sonnet-4-5"))
        #expect(try !ModelGlob("claude-*-4-?").matches("claude-sonnet-4-50"))
        #expect(try ModelGlob("*").matches(""))
        #expect(try !ModelGlob("gpt-4o").matches("gpt-4o\u{0301}"))
        // Backtracking stays linear on patterns built to make naive matchers explode.
        let hostile = try ModelGlob(String(repeating: "*a", count: 100) + "b")
        let started = ContinuousClock.now
        #expect(!hostile.matches(String(repeating: "a", count: 4000)))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(throws: InvalidInput.self) { try ModelGlob("") }
        #expect(throws: InvalidInput.self) { try ModelGlob("a\nb") }
    }

    @Test("budget windows are UTC days and calendar months")
    func windows() throws {
        let moment = try Date("2026-12-31T23:59:59Z", strategy: .iso8601)
        #expect(BudgetWindow.day.start(of: moment) == (try Date("2026-12-31T00:00:00Z", strategy: .iso8601)))
        #expect(BudgetWindow.day.end(of: moment) == (try Date("2027-01-01T00:00:00Z", strategy: .iso8601)))
        #expect(BudgetWindow.month.start(of: moment) == (try Date("2026-12-01T00:00:00Z", strategy: .iso8601)))
        #expect(BudgetWindow.month.end(of: moment) == (try Date("2027-01-01T00:00:00Z", strategy: .iso8601)))
    }

    @Test("times as typed: durations, dates, times with zones")
    func times() throws {
        let now = try Date("2026-12-07T12:00:00Z", strategy: .iso8601)
        #expect(TimeText.moment("30d", now: now, durationsCount: 1) == now.addingTimeInterval(30 * 86400))
        #expect(TimeText.moment("12h", now: now, durationsCount: -1) == now.addingTimeInterval(-12 * 3600))
        #expect(TimeText.moment("2027-01-01", now: now, durationsCount: 1) == (try Date("2027-01-01T00:00:00Z", strategy: .iso8601)))
        #expect(TimeText.moment("2026-12-31T18:00:00Z", now: now, durationsCount: 1) == (try Date("2026-12-31T18:00:00Z", strategy: .iso8601)))
        #expect(TimeText.moment("tomorrow", now: now, durationsCount: 1) == nil)
        #expect(TimeText.duration("infd") == nil)
        #expect(throws: InvalidInput.self) { try UsageQuery(application: nil, user: nil, since: nil, by: "week") }
        #expect(throws: InvalidInput.self) { try UsageQuery(application: nil, user: nil, since: "soon", by: nil) }
        #expect(try UsageQuery(application: "", user: "", since: "", by: "") == UsageQuery())
    }
}

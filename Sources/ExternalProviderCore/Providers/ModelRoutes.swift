/// Where a provider's relayed requests name their model, and which of them spend tokens their answer
/// does not report; paths relative to its API root, each a prefix of whole segments.
public struct ModelRoutes: Sendable {
    /// The model lists (`models`): what an application limited to some models sees filtered.
    public let listings: [String]
    /// Paths whose requests take no model (`files`): they pass.
    public let modelFree: [String]
    /// Paths of batches, whose requests carry a model each that the relay cannot check, and whose
    /// tokens are spent later, unreported here.
    public let batches: [String]
    /// Paths of work that spends tokens later, elsewhere (assistants' runs, fine-tuning, tuning jobs).
    public let asynchronous: [String]
    /// Paths that make a credential for use directly with the provider (realtime sessions, ephemeral
    /// tokens): past every limit of the relay.
    public let credentials: [String]
    /// Whether the model is named in the path (`models/{model}:generateContent`) rather than the body.
    public let inPath: Bool
    /// Methods (after the colon) of a model in the path that run as a batch: `batchGenerateContent`.
    public let batchMethods: [String]
    /// Paths whose streamed answers report their usage only when the request asks,
    /// `"stream_options": {"include_usage": true}` (OpenAI's chat and text completions).
    public let usageOnlyWhenAsked: [String]

    public init(
        listings: [String], modelFree: [String], batches: [String], asynchronous: [String] = [], credentials: [String] = [],
        inPath: Bool = false, batchMethods: [String] = [], usageOnlyWhenAsked: [String] = []
    ) {
        self.listings = listings
        self.modelFree = modelFree
        self.batches = batches
        self.asynchronous = asynchronous
        self.credentials = credentials
        self.inPath = inPath
        self.batchMethods = batchMethods
        self.usageOnlyWhenAsked = usageOnlyWhenAsked
    }

    /// OpenAI's protocol, as OpenAI, Mistral and Groq speak it; `usageOnlyWhenAsked` as OpenAI's own
    /// API answers (Mistral's and Groq's streams end with their usage unasked).
    public static func openAIProtocol(usageOnlyWhenAsked: Bool) -> ModelRoutes {
        ModelRoutes(
            listings: ["models"], modelFree: ["files", "uploads", "vector_stores", "containers"], batches: ["batches"],
            asynchronous: ["threads", "fine_tuning"], credentials: ["realtime"],
            usageOnlyWhenAsked: usageOnlyWhenAsked ? ["chat/completions", "completions"] : [])
    }
}

/// What a relayed request asks of the provider, as far as an application's limits go.
public struct RelayedRequest: Sendable, Equatable {
    public var model: RequestedModel
    /// Models it names besides its own: its tools'.
    public var otherModels: [String] = []
    /// Why the tokens it spends will not be reported in its answer, if they will not.
    public var uncounted: Uncounted?
    /// It makes a credential for use directly with the provider.
    public var mintsCredential = false

    public enum Uncounted: Sendable, Equatable {
        /// A stream that does not ask for its usage where the provider reports it only when asked, or a
        /// body on such a path that cannot be read to tell.
        case streamWithoutUsage
        /// `"background": true`: the answer comes later, elsewhere.
        case background
        /// A batch, or a job (fine-tuning, an assistant's run) that spends later.
        case later
    }

    public init(model: RequestedModel) {
        self.model = model
    }

    /// Whether its answer is a generation's, whose usage counts: it names a model, or should.
    public var spendsTokens: Bool {
        switch model {
        case .named, .unreadable: true
        case .none, .listing, .batch: false
        }
    }
}

extension ProviderProfile {
    /// What a relayed request asks of the provider. `segments`: the path after the API root, percent-
    /// decoded; `body`: what was read of it (`bodyWhole` when that is all of it).
    public func relayedRequest(method: String, segments: [String], body: [UInt8]?, bodyWhole: Bool) -> RelayedRequest {
        let path = segments.joined(separator: "/")
        func under(_ prefixes: [String]) -> Bool { prefixes.contains { path == $0 || path.hasPrefix($0 + "/") } }
        var request = RelayedRequest(model: .none)
        request.mintsCredential = under(models.credentials)
        if method == "GET" || method == "HEAD" || method == "DELETE" {
            if models.listings.contains(path) {
                request.model = .listing
            } else if let listing = models.listings.first(where: { path.hasPrefix($0 + "/") }) {
                // Retrieving one model names it.
                request.model = .named(String(path.dropFirst(listing.count + 1)))
            }
            return request
        }
        if under(models.batches) {
            request.model = .batch
            request.uncounted = .later
            return request
        }
        if under(models.asynchronous) { request.uncounted = .later }
        if under(models.modelFree) { return request }
        if models.inPath {
            let named = Self.modelsInPath(segments)
            // Two models in one path: the provider might route by either.
            if Set(named.map(\.model)).count > 1 {
                request.model = .unreadable(.twice)
                return request
            }
            if let found = named.first {
                request.model = .named(found.model)
                // A tuned model's generation is counted; only a batch method spends later.
                request.uncounted = models.batchMethods.contains(found.method) ? .later : nil
                return request
            }
        }
        guard bodyWhole else {
            request.model = .unreadable(.tooLong)
            return request
        }
        guard let body, !body.isEmpty else {
            request.model = .unreadable(.missing)
            return request
        }
        let read = RequestBody.read(body)
        request.model = read.model
        if case .named(let name) = read.model, models.inPath, name.hasPrefix("models/") {
            request.model = .named(String(name.dropFirst("models/".count)))
        }
        request.otherModels = read.toolModels
        if read.background { request.uncounted = .background }
        if models.usageOnlyWhenAsked.contains(path), read.model == .unreadable(.notJSON) || (read.streams && !read.asksForUsage) {
            request.uncounted = .streamWithoutUsage
        }
        return request
    }

    /// `models/gemini-2.5-flash:generateContent` (or `tunedModels/…`) names `gemini-2.5-flash`, and its
    /// method `generateContent`.
    static func modelsInPath(_ segments: [String]) -> [(model: String, method: String)] {
        segments.indices.dropLast().compactMap { index in
            guard segments[index] == "models" || segments[index] == "tunedModels" else { return nil }
            let next = segments[index + 1]
            return next.firstIndex(of: ":").map { (String(next[..<$0]), String(next[next.index(after: $0)...])) }
        }
    }
}

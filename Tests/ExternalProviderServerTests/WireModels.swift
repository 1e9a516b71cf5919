/// The wire format as a client sees it, written independently of the generated types so that a change
/// in the spec or the generator that alters the wire shows up here.
struct WireSchema: Codable, Equatable {
    var migration: Int
    var semantic: String

    static let current = WireSchema(migration: 6, semantic: "MAJOR_0_MINOR_0_PATCH_1")
}

struct WireOpenAI: Codable, Equatable {
    var api_key: String?
    var api_key_name: String?
    var organization_key: String?
    var schema: WireSchema?
}

struct WireMetadata: Codable, Equatable {
    var global_id: String
    var open_AI: WireOpenAI?
    var schema: WireSchema?
}

struct WireOutput: Codable, Equatable {
    var metadata: WireMetadata
    var schema: WireSchema?
}

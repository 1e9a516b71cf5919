/// How a stored key is shown in every response: as OpenAI's dashboard shows it.
public enum APIKeyMask {
    /// Below this length the first 3 and last 4 characters would reveal too much of the key.
    public static let minimumMaskableLength = 20

    public static func mask(_ key: String) -> String {
        guard key.count >= minimumMaskableLength else { return "****" }
        return "\(key.prefix(3))...\(key.suffix(4))"
    }
}

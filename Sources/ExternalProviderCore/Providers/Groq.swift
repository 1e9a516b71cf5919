extension ProviderProfile {
    /// Groq: OpenAI's protocol at `https://api.groq.com/openai/v1`; a bad key gets OpenAI's 401
    /// `invalid_api_key`.
    public static let groq = ProviderProfile.speakingOpenAIsProtocol(
        name: "groq", displayName: "Groq", defaultBaseURL: "https://api.groq.com/openai/v1", mask: .knownPrefix("gsk_"))
}

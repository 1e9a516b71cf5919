extension ProviderProfile {
    /// Mistral: OpenAI's protocol at `https://api.mistral.ai/v1`. Its error body is not documented and has
    /// changed, so a refusal is read from the status: 401.
    public static let mistral = ProviderProfile.speakingOpenAIsProtocol(
        name: "mistral", displayName: "Mistral", defaultBaseURL: "https://api.mistral.ai/v1", mask: .knownPrefix(""))
}

import ExternalProviderCore

extension KeyStore {
    /// An operation through the one write path every store serves, with verification off.
    public func perform(_ operation: KeyOperation, for user: UserID) async throws -> UserAccount {
        try await KeyService(store: self, verifier: nil).perform(operation, for: user, origin: .commandLine)
    }
}

import ExternalProviderCore
import Synchronization

/// A provider's key check, for tests: it answers what `answer` says of the credentials (every key
/// accepted, unless told otherwise), records what it was asked, and can let something happen while it
/// is asked (`meanwhile`, given the count of checks so far), as a concurrent write would between a
/// check and the write after it.
public final class FakeVerifier: KeyVerifier {
    private let record = Mutex<[ProviderCredentials]>([])
    private let answer: @Sendable (ProviderCredentials) -> VerificationOutcome
    private let meanwhile: (@Sendable (Int) async throws -> Void)?

    public init(
        answer: @escaping @Sendable (ProviderCredentials) -> VerificationOutcome = { _ in .accepted },
        meanwhile: (@Sendable (Int) async throws -> Void)? = nil
    ) {
        self.answer = answer
        self.meanwhile = meanwhile
    }

    /// Refuses keys that contain `refused` with `invalid_api_key`, answers 429 to those that contain
    /// `busy`, and accepts the rest.
    public convenience init(refusingKeysContaining refused: String) {
        self.init { credentials in
            if credentials.apiKey.contains(refused) { return .rejected(code: "invalid_api_key") }
            if credentials.apiKey.contains("busy") { return .rateLimited }
            return .accepted
        }
    }

    /// Every credentials asked about, in order.
    public var asked: [ProviderCredentials] { record.withLock { $0 } }

    public func verify(_ credentials: ProviderCredentials) async -> VerificationOutcome {
        let count = record.withLock { asked in
            asked.append(credentials)
            return asked.count
        }
        try? await meanwhile?(count)
        return answer(credentials)
    }
}

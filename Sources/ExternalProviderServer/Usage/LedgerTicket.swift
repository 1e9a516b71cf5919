import ExternalProviderCore
import Foundation

/// What a relayed request's ledger entry will say, known before it leaves; completed with the answer's
/// status and tokens when it ends.
struct LedgerTicket: Sendable {
    let spender: Spender
    let provider: Provider
    let model: String?
    let requestID: String
    let started: ContinuousClock.Instant
    /// Its application has a token budget.
    let budgeted: Bool
    let recorder: UsageRecorder

    /// Model names are the caller's text: the ledger keeps at most this many characters of one.
    static let maxModelLength = 200

    func record(status: Int, tokens: TokenUsage = TokenUsage()) {
        let model = model.map { $0.count > Self.maxModelLength ? String($0.prefix(Self.maxModelLength)) : $0 }
        recorder.record(
            UsageEntry(
                at: Date(), application: spender.application.value, user: spender.user, provider: provider, model: model, status: status,
                durationMilliseconds: Int((ContinuousClock.now - started) / .milliseconds(1)), requestID: requestID, tokens: tokens),
            budgeted: budgeted)
    }
}

import ExternalProviderCore

/// `GET /ready`: whether the store answers a trivial query within `budget`. A load balancer sends
/// traffic only to instances whose store answers; `GET /health` says only that the process runs.
enum Readiness {
    static let budget: Duration = .seconds(1)

    /// Answers by `budget` even when the store's check ignores cancellation, as a query on a dropped
    /// connection can.
    static func storeAnswers(_ store: any KeyStore, within budget: Duration = budget) async -> Bool {
        let answered = try? await Deadline.answering(within: budget, orThrowing: { NoAnswer() }) { try await store.checkReachable() }
        return answered != nil
    }

    private struct NoAnswer: Error {}
}

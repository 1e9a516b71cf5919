import ExternalProviderCore

/// `GET /ready`: whether the store answers a trivial query within `budget`. A load balancer sends
/// traffic only to instances whose store answers; `GET /health` says only that the process runs.
enum Readiness {
    static let budget: Duration = .seconds(1)

    static func storeAnswers(_ store: any KeyStore, within budget: Duration = budget) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await store.checkReachable()) != nil }
            group.addTask {
                try? await Task.sleep(for: budget)
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
    }
}

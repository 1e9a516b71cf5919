import ExternalProviderAPI
import ExternalProviderCore
import OpenAPIRuntime

/// `GET /v1/usage`: the ledger added up, for applications with the `admin` scope; the same query and
/// the same JSON as `external-provider usage --json`.
extension APIHandler {
    func getUsage(_ input: Operations.GetUsage.Input) async throws -> Operations.GetUsage.Output {
        let query = try Self.parse { () throws(InvalidInput) in
            try UsageQuery(application: input.query.app, user: input.query.user, since: input.query.since, by: input.query.by)
        }
        let groups = try await ledger.usage(query).map {
            Components.Schemas.UsageGroup(
                key: $0.key, requests: Int64($0.requests), errors: Int64($0.errors), inputTokens: Int64($0.inputTokens),
                outputTokens: Int64($0.outputTokens), cachedTokens: Int64($0.cachedTokens))
        }
        return .ok(.init(body: .json(.init(by: query.by.rawValue, groups: groups))))
    }
}

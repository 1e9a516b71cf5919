import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

@Suite("Metrics and the audit trail over HTTP")
struct MetricsAndAuditTests {
    /// The value of the sample whose name and labels are exactly `series`, e.g. `name{a="b"}`.
    static func sample(_ series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("/metrics counts requests by operation and status, times them, counts verifications and keys by health; no user in a label")
    func metrics() async throws {
        let server = try await TestServer(verifier: FakeVerifier(refusingKeysContaining: "sk-refused-"))
        try await server.run { client in
            #expect(try await client.post("create", #"{"user":"auth0|metered","open_AI":{"api_key":"sk-metered-00000000000000"}}"#).status == .ok)
            #expect(try await client.post("create", #"{"user":"auth0|refused","open_AI":{"api_key":"sk-refused-0000000000000"}}"#).status == .unauthorized)
            #expect(try await client.post("update", #"{"user":"auth0|nobody","open_AI":{"api_key_name":"n"}}"#).status == .notFound)
            _ = try await client.send("/no/such/path", method: .get)
            let scraped = try await client.send("/metrics", method: .get)
            #expect(scraped.status == .ok)
            #expect(scraped.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let text = scraped.body
            #expect(Self.sample(#"external_provider_requests_total{operation="create",status="200"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_requests_total{operation="create",status="401"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_requests_total{operation="update",status="404"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_requests_total{operation="unmatched",status="404"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_request_duration_seconds_count{operation="create"}"#, in: text) == 2)
            #expect(Self.sample(#"external_provider_key_verifications_total{provider="openai",outcome="accepted"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_key_verifications_total{provider="openai",outcome="rejected"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_keys{provider="openai",health="valid"}"#, in: text) == 1)
            #expect(Self.sample(#"external_provider_keys{provider="openai",health="unverified"}"#, in: text) == 0)
            for private_ in ["auth0|", "metered", "sk-", server.applicationID, "tests"] {
                #expect(!text.contains(private_), "\(private_) in /metrics")
            }
            // The scrape itself is counted once it has been written.
            let again = try await client.send("/metrics", method: .get).body
            #expect(Self.sample(#"external_provider_requests_total{operation="metrics",status="200"}"#, in: again) == 1)
        }
    }

    @Test("every duration histogram's bucket bounds strictly increase, and /metrics names each `le` of a series once")
    func histogramBuckets() async throws {
        let server = try await TestServer()
        try await server.run { client in
            _ = try await client.send("/health", method: .get)
            let text = try await client.send("/metrics", method: .get).body
            // Each series' bucket bounds, in the order /metrics gives them, by the series' other labels.
            var bounds: [String: [String]] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("external_provider_") && line.contains("_bucket{") {
                guard let match = line.firstMatch(of: #/^(.*_bucket)\{(.*)le="([^"]+)"(.*)\} /#) else { continue }
                bounds["\(match.output.1){\(match.output.2)\(match.output.4)}", default: []].append(String(match.output.3))
            }
            #expect(!bounds.isEmpty)
            for (series, les) in bounds {
                #expect(Set(les).count == les.count, "\(series) repeats an le: \(les)")
                let numbers = les.compactMap { $0 == "+Inf" ? Double.infinity : Double($0) }
                #expect(numbers == numbers.sorted() && Set(numbers).count == numbers.count, "\(series): \(les)")
                #expect(les.contains("0.0025"), "\(series) has no 2.5 ms bucket")
            }
        }
        #expect(zip(ServerMetrics.durationBuckets, ServerMetrics.durationBuckets.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test("a store fault is counted as a store error")
    func storeErrors() async throws {
        let server = try await TestServer()
        try await server.run { client in
            #expect(try await client.post("create", #"{"user":"auth0|broken","open_AI":{"api_key":"sk-broken-0000000000000"}}"#).status == .ok)
            try await server.store.writer.write { db in try db.execute(sql: "UPDATE provider_key SET api_key = x'00'") }
            #expect(try await client.post("update", #"{"user":"auth0|broken","open_AI":{"api_key_name":"n"}}"#).status == .internalServerError)
            let text = try await client.send("/metrics", method: .get).body
            #expect(Self.sample(#"external_provider_store_errors_total{kind="fault"}"#, in: text) == 1)
        }
    }

    @Test("a change over HTTP is audited with the application's name and the request id, never the id or a value")
    func auditedOverHTTP() async throws {
        let server = try await TestServer()
        try await server.run { client in
            let answer = try await client.post(
                "create", #"{"user":"auth0|audited","open_AI":{"api_key":"sk-audited-0000000000000","organization_key":"org-audited"}}"#,
                headers: [RequestLogMiddleware.header: "req-audit-1"])
            #expect(answer.status == .ok)
            #expect(try await client.post("update", #"{"user":"auth0|nobody","open_AI":{"api_key_name":"n"}}"#).status == .notFound)
        }
        // The application the test server registered is the trail's first entry.
        #expect(try await server.store.auditTrail(AuditQuery()).map(\.action) == [.appsCreate, .create])
        let entries = try await server.store.auditTrail(AuditQuery(user: UserID(trusted: "auth0|audited")))
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry.action == .create && entry.user == UserID(trusted: "auth0|audited"))
        #expect(entry.application == "tests" && entry.requestID == "req-audit-1" && entry.fields == [.apiKey, .organizationKey])
        #expect(entry.verification == "unverified")
    }
}

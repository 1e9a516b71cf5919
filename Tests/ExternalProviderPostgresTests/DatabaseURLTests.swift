import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderPostgres

@Suite("--database-url")
struct DatabaseURLTests {
    @Test("a PostgreSQL URL gives host, port, user, password, database and sslmode; the redacted form hides the password")
    func parses() throws {
        let url = try DatabaseURL("postgres://keys:s%40cret@db.internal:6543/keys?sslmode=verify-full")
        #expect(url.host == "db.internal" && url.port == 6543 && url.username == "keys" && url.password == "s@cret")
        #expect(url.database == "keys" && url.sslMode == .verifyFull)
        #expect(url.redacted == "postgres://keys:***@db.internal:6543/keys?sslmode=verify-full")
        #expect(!url.redacted.contains("cret"))
        let plain = try DatabaseURL("postgresql://me@localhost/db")
        #expect(plain.port == 5432 && plain.password == nil && plain.sslMode == .prefer)
    }

    @Test("anything else is refused in one line", arguments: [
        "mysql://me@host/db", "postgres://host/db", "postgres://me@/db", "not a url", "postgres://me@host/db?sslmode=sometimes",
    ])
    func refuses(text: String) {
        #expect(throws: DatabaseURLError.self) { try DatabaseURL(text) }
    }
}

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

/// Swift's `String ==` calls canonically equivalent strings equal, while the store compares bytes: an
/// update from one form to the other must store the new bytes, and an id must match byte for byte.
@Suite("Canonically equivalent but different bytes: an update is stored, an id is not accepted")
struct CanonicalEquivalenceTests {
    static let decomposed = "Cafe\u{301}"  // "Café" as "e" and a combining acute accent (NFD)
    static let precomposed = "Caf\u{E9}"  // "Café" with one precomposed scalar (NFC)

    func storedKey(_ server: TestServer, user: String = "auth0|nfc") async throws -> ProviderKey {
        try #require(try await server.store.account(for: UserID(trusted: user))?.keys[.openAI])
    }

    @Test("an update of api_key_name, organization_key or api_key to its other normal form is stored")
    func updateToTheOtherForm() async throws {
        #expect(Self.decomposed == Self.precomposed, "the premise: Swift says these are equal")
        let server = try await TestServer()
        let keyNFD = "sk-proj-nfc-\(Self.decomposed)-0000"
        let keyNFC = "sk-proj-nfc-\(Self.precomposed)-0000"
        try await server.run { client in
            let created = #"{"user":"auth0|nfc","open_AI":{"api_key":"\#(keyNFD)","api_key_name":"\#(Self.decomposed)","organization_key":"org-\#(Self.decomposed)"}}"#
            #expect(try await client.post("create", created).status == .ok)

            let name = try await client.post("update", #"{"user":"auth0|nfc","open_AI":{"api_key_name":"\#(Self.precomposed)"}}"#)
            #expect(name.status == .ok)
            let storedName = try await storedKey(server).apiKeyName
            #expect(Array(storedName?.utf8 ?? "".utf8) == Array(Self.precomposed.utf8))

            let organization = try await client.post("update", #"{"user":"auth0|nfc","open_AI":{"organization_key":"org-\#(Self.precomposed)"}}"#)
            #expect(organization.status == .ok)
            let storedOrganization = try await storedKey(server).organizationKey
            #expect(Array(storedOrganization?.utf8 ?? "".utf8) == Array("org-\(Self.precomposed)".utf8))

            let key = try await client.post("update", #"{"user":"auth0|nfc","open_AI":{"api_key":"\#(keyNFC)"}}"#)
            #expect(key.status == .ok)
            let storedAPIKey = try await storedKey(server).apiKey
            #expect(Array(storedAPIKey.utf8) == Array(keyNFC.utf8))
        }
    }

    @Test("users are told apart by their bytes: the two forms of one name are two users")
    func usersByBytes() async throws {
        let server = try await TestServer()
        let createNFD = #"{"user":"\#(Self.decomposed)","open_AI":{"api_key":"sk-user-nfd-000000"}}"#
        let updateNFC = #"{"user":"\#(Self.precomposed)"}"#
        let createNFC = #"{"user":"\#(Self.precomposed)","open_AI":{"api_key":"sk-user-nfc-000000"}}"#
        try await server.run { client in
            let created = try await client.post("create", createNFD)
            #expect(created.status == .ok)
            let other = try await client.post("update", updateNFC)
            #expect(other.status == .notFound)
            let second = try await client.post("create", createNFC)
            #expect(second.status == .ok)
        }
        #expect(try await storedKey(server, user: Self.decomposed).apiKey == "sk-user-nfd-000000")
        #expect(try await storedKey(server, user: Self.precomposed).apiKey == "sk-user-nfc-000000")
    }

    @Test("an application id with K replaced by the Kelvin sign is refused, even while the real id is cached")
    func kelvinSign() async throws {
        let server = try await TestServer()
        // Ids are random base64url: register until one has a "K" to replace.
        var id = server.applicationID
        var attempt = 0
        while !id.contains("K") {
            attempt += 1
            id = try await server.store.registerApplication(named: "kelvin-\(attempt)")
        }
        let lookalike = id.replacingOccurrences(of: "K", with: "\u{212A}")
        #expect(lookalike == id, "the premise: Swift says these are equal")
        let realID = id
        try await server.run { client in
            let real = try await client.post("update", #"{"user":"u"}"#, applicationID: realID)
            #expect(real.status == .notFound)
            let fake = try await client.post("update", #"{"user":"u"}"#, applicationID: lookalike)
            #expect(fake.status == .unauthorized)
        }
    }
}

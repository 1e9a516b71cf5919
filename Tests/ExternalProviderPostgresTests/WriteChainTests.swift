import ExternalProviderCore
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ExternalProviderPostgres

/// A busy user's writes in one batch are decided one after another, each on the account the one before
/// leaves, and written in rounds. What was decided on a write that then did not land is decided again.
@Suite("PostgreSQL: one user's writes chained in a batch")
struct WriteChainTests {
    let user = UserID(trusted: "auth0|chained")
    let logger = Logger(label: "test")

    /// Whatever the chain is given; the client is never run, since deciding and settling send nothing.
    func store() throws -> PostgresKeyStore {
        let client = PostgresKeyStore.makeClient(try DatabaseURL("postgres://nobody@127.0.0.1:9/none?sslmode=disable"), logger: logger)
        return PostgresKeyStore(client: client, masterKey: MasterKey.generate(), logger: logger)
    }

    func decide(_ operation: KeyOperation) -> Decide {
        { [user] current in AccountChange(account: try operation.apply(to: current, user: user), healthOfNewCredentials: .unverified, audit: nil) }
    }

    static func describe(_ outcomes: [FirstAttempt]) -> [String] {
        outcomes.map { outcome in
            switch outcome {
            case .landed: "landed"
            case .failed(let error): "refused: \(error)"
            case .needsTransaction: "again"
            }
        }
    }

    @Test("a refusal decided after a write of the chain stands only if that write lands; a write stands only if those before it land")
    func settling() throws {
        let store = try store()
        let create = KeyOperation.create(try NewKey(provider: .openAI, apiKey: "sk-chained-0123456789Wxyz", apiKeyName: "", organizationKey: nil))
        let rename = KeyOperation.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: "renamed", organizationKey: nil))
        var chain = WriteChain(account: nil, version: nil)
        chain.decide(decide(create), index: 0, store: store)  // makes the account: round 0
        chain.decide(decide(create), index: 1, store: store)  // refused: the key the write before made exists
        chain.decide(decide(rename), index: 2, store: store)  // round 1, at the version round 0 leaves
        #expect(chain.writeCount == 2)
        #expect(chain.row(0)?.expectedVersion == nil && chain.row(1)?.expectedVersion == 1)
        let conflict = "refused: \(StateConflict.keyExists(user, .openAI))"

        func settled(_ landed: [Set<String>]) -> [String] {
            var outcomes = [FirstAttempt](repeating: .needsTransaction, count: 3)
            chain.settle(landed: landed, into: &outcomes)
            return Self.describe(outcomes)
        }
        #expect(settled([[user.rawValue], [user.rawValue]]) == ["landed", conflict, "landed"])
        #expect(settled([[user.rawValue], []]) == ["landed", conflict, "again"])
        // Another instance made the account first: the refusal was decided on a state that never was.
        #expect(settled([[], []]) == ["again", "again", "again"])
        #expect(settled([]) == ["again", "again", "again"])
    }

    @Test("a refusal decided on the account as read stands, whatever the writes after it do")
    func refusalOnTheReadAccount() throws {
        let store = try store()
        let rename = KeyOperation.update(try KeyPatch(provider: .openAI, apiKey: nil, apiKeyName: "renamed", organizationKey: nil))
        let create = KeyOperation.create(try NewKey(provider: .openAI, apiKey: "sk-chained-0123456789Wxyz", apiKeyName: "", organizationKey: nil))
        var chain = WriteChain(account: nil, version: nil)
        chain.decide(decide(rename), index: 0, store: store)  // refused: no such user
        chain.decide(decide(create), index: 1, store: store)  // round 0
        #expect(chain.writeCount == 1)
        var outcomes = [FirstAttempt](repeating: .needsTransaction, count: 2)
        chain.settle(landed: [[]], into: &outcomes)
        #expect(Self.describe(outcomes) == ["refused: \(StateConflict.unknownUser(user))", "again"])
    }
}

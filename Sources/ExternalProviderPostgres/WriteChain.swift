import ExternalProviderCore
import ExternalProviderStore
import Foundation
import PostgresNIO

typealias Decide = @Sendable (UserAccount?) throws -> AccountChange

/// One user's writes in a batch, in arrival order, each decided on the account the one before it
/// leaves. A write that needs several statements ends the chain: it and those after it are tried again
/// alone.
struct WriteChain {
    private enum Step {
        /// Lands with the write of `round`, if it and the user's writes before it land.
        case write(index: Int, round: Int, row: GuardedWriteRow, account: UserAccount)
        /// A no-op or a refusal, decided on the account the writes before it leave: it stands only if
        /// they land. Otherwise it was decided on a state that never was, and is decided again alone.
        case decided(index: Int, outcome: FirstAttempt)
    }

    private var account: UserAccount?
    private var version: Int64?
    private var steps: [Step] = []
    private var rows: [GuardedWriteRow] = []
    private var ended = false

    init(account: UserAccount?, version: Int64?) {
        self.account = account
        self.version = version
    }

    var writeCount: Int { rows.count }

    func row(_ round: Int) -> GuardedWriteRow? {
        round < rows.count ? rows[round] : nil
    }

    mutating func decide(_ decide: Decide, index: Int, store: PostgresKeyStore) {
        guard !ended else { return }
        do {
            let change = try decide(account)
            let changeRows = try store.writeRows(change, replacing: account, version: version)
            switch changeRows.count {
            case 0:
                steps.append(.decided(index: index, outcome: .landed(change.account)))
            case 1:
                steps.append(.write(index: index, round: rows.count, row: changeRows[0], account: change.account))
                rows.append(changeRows[0])
                account = change.account
                version = GuardedWriteRow.version(after: version, rows: 1)
            default:
                ended = true
            }
        } catch {
            steps.append(.decided(index: index, outcome: .failed(error)))
        }
    }

    /// Each step's outcome, given the users whose row landed in each round; a step whose writes before
    /// it did not all land is left to be tried again alone.
    func settle(landed: [Set<String>], into outcomes: inout [FirstAttempt]) {
        for step in steps {
            switch step {
            case .write(let index, let round, let row, let account):
                guard round < landed.count, landed[round].contains(row.user) else { return }
                outcomes[index] = .landed(account)
            case .decided(let index, let outcome):
                outcomes[index] = outcome
            }
        }
    }
}

/// How a write's first attempt, in a batch, ended.
enum FirstAttempt: Sendable {
    case landed(UserAccount)
    /// Refused, or the batch failed.
    case failed(any Error)
    /// Another write came first, or the change needs several statements: it is tried again alone.
    case needsTransaction
}

extension GuardedWriteRow {
    /// Sets the key's columns: the key sealed, its name, the organization sealed.
    mutating func seal(_ key: ProviderKey, with codec: SealedKeyCodec, provider: Provider) throws {
        let sealed = try codec.seal(key, user: user, provider: provider.rawValue)
        sealedKey = ByteBuffer(data: sealed.apiKey)
        keyName = key.apiKeyName
        sealedOrganization = sealed.organizationKey.map { ByteBuffer(data: $0) }
    }
}

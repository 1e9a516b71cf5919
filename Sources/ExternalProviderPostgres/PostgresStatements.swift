import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

// Every statement an account read or write runs, as named prepared statements. PostgresNIO prepares each once per
// connection and then only binds and executes it. The same statement sent as a one-off query made
// PostgreSQL parse, analyze and plan it on every request: profiled under 16 writers, that was half of
// PostgreSQL's CPU and a fifth of the machine's. Every parameter is cast, since a prepared statement's
// types come from its text, not from the values of its first use. Names are written out: PostgreSQL
// cuts a name at 63 bytes, and the default (the Swift type's full name) made the write shapes collide.

/// A user's account with this store's master key id beside it: rows of (master key id, version, global
/// id, provider, sealed key, name, sealed organization), one per key, or one with no key; none at all
/// when the database records no master key.
struct ReadAccountClaiming: AccountRead {
    static let name = "ep_read_account_claiming"
    static let sql = """
        SELECT m.value, a.version, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
        FROM store_meta m
        LEFT JOIN user_account a ON a.user_id = $1::text
        LEFT JOIN provider_key k ON k.user_id = a.user_id
        WHERE m.name = 'master_key_id'
        """
    let user: String
}

/// The same without the master key: for reads, which never seal.
struct ReadAccount: AccountRead {
    static let name = "ep_read_account"
    static let sql = """
        SELECT NULL::bytea, a.version, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
        FROM user_account a LEFT JOIN provider_key k ON k.user_id = a.user_id WHERE a.user_id = $1::text
        """
    let user: String
}

typealias AccountRow = (Data?, Int64?, UUID?, String?, Data?, String?, Data?)

/// The two account reads: one parameter, the user; rows of `AccountRow`.
protocol AccountRead: PostgresPreparedStatement where Row == AccountRow {
    var user: String { get }
}

extension AccountRead {
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(user)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> AccountRow { try row.decode(AccountRow.self) }
}

/// Every write, each one version-guarded statement with the audit entry if it has one. Their
/// parameters: $1 user, $2 global id, $3 now, $4 the version expected (`NULL`: no account), $5 provider;
/// the audit entry's $6–$12 (all `NULL`: none); then the key's own from $13.
enum GuardedKeyWrite: Equatable {
    case insert
    case update(newPair: Bool)
    case delete
    /// A new account with no key yet ($5 is `NULL`).
    case accountOnly

    private static let account = """
        WITH account AS (
            INSERT INTO user_account (user_id, global_id, created_at) VALUES ($1::text, $2::uuid, $3::timestamptz)
            ON CONFLICT (user_id) DO UPDATE SET version = user_account.version + 1 WHERE user_account.version = $4::bigint
            RETURNING user_id),
        """
    private static let audited = """
        audited AS (
            INSERT INTO audit_event (at, action, user_id, fields, application, request_id, verification)
            SELECT $6::timestamptz, $7::text, $8::text, $9::text, $10::text, $11::text, $12::text FROM (SELECT 1 FROM written LIMIT 1) AS w
            WHERE $7::text IS NOT NULL)
        SELECT 1 FROM written
        """
    private static let newHealth = "verified_at = $16::timestamptz, health = $17::text, health_checked_at = $18::timestamptz, health_code = $19::text"

    static let insertSQL = account + """
        written AS (
            INSERT INTO provider_key (user_id, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                health, health_checked_at, health_code)
            SELECT user_id, $5::text, $13::bytea, $14::text, $15::bytea, $16::timestamptz, $3::timestamptz, $3::timestamptz,
                $17::text, $18::timestamptz, $19::text
            FROM account RETURNING 1),
        """ + audited
    static let updateSQL = account + """
        written AS (
            UPDATE provider_key k SET api_key = $13::bytea, api_key_name = $14::text, organization_key = $15::bytea, updated_at = $3::timestamptz
            FROM account WHERE k.user_id = account.user_id AND k.provider = $5::text RETURNING 1),
        """ + audited
    static let updateWithNewPairSQL = account + """
        written AS (
            UPDATE provider_key k SET api_key = $13::bytea, api_key_name = $14::text, organization_key = $15::bytea, updated_at = $3::timestamptz,
                \(newHealth)
            FROM account WHERE k.user_id = account.user_id AND k.provider = $5::text RETURNING 1),
        """ + audited
    static let deleteSQL = account + """
        written AS (DELETE FROM provider_key k USING account WHERE k.user_id = account.user_id AND k.provider = $5::text RETURNING 1),
        """ + audited
    static let accountOnlySQL = account + """
        written AS (SELECT 1 FROM account WHERE $5::text IS NULL),
        """ + audited

    /// Runs the write with its parameters; returns whether it landed (the account was still at `version`).
    func run(_ bindings: PostgresBindings, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        switch self {
        case .insert: try await Self.landed(GuardedStatement<InsertShape>(bindings: bindings), on: connection, logger: logger)
        case .update(newPair: false): try await Self.landed(GuardedStatement<UpdateShape>(bindings: bindings), on: connection, logger: logger)
        case .update(newPair: true): try await Self.landed(GuardedStatement<UpdateWithNewPairShape>(bindings: bindings), on: connection, logger: logger)
        case .delete: try await Self.landed(GuardedStatement<DeleteShape>(bindings: bindings), on: connection, logger: logger)
        case .accountOnly: try await Self.landed(GuardedStatement<AccountOnlyShape>(bindings: bindings), on: connection, logger: logger)
        }
    }

    private static func landed<Shape>(_ statement: GuardedStatement<Shape>, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        try await connection.execute(statement, logger: logger).first { _ in true } != nil
    }
}

/// One of the fixed statements above, prepared under a name of its own (the type's, shape included).
protocol GuardedShape: Sendable {
    static var name: String { get }
    static var sql: String { get }
}

enum InsertShape: GuardedShape {
    static let name = "ep_write_insert_key"
    static var sql: String { GuardedKeyWrite.insertSQL }
}

enum UpdateShape: GuardedShape {
    static let name = "ep_write_update_key"
    static var sql: String { GuardedKeyWrite.updateSQL }
}

enum UpdateWithNewPairShape: GuardedShape {
    static let name = "ep_write_update_key_new_pair"
    static var sql: String { GuardedKeyWrite.updateWithNewPairSQL }
}

enum DeleteShape: GuardedShape {
    static let name = "ep_write_delete_key"
    static var sql: String { GuardedKeyWrite.deleteSQL }
}

enum AccountOnlyShape: GuardedShape {
    static let name = "ep_write_account_only"
    static var sql: String { GuardedKeyWrite.accountOnlySQL }
}

struct GuardedStatement<Shape: GuardedShape>: PostgresPreparedStatement {
    static var name: String { Shape.name }
    static var sql: String { Shape.sql }
    typealias Row = Int32

    let bindings: PostgresBindings

    func makeBindings() -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> Int32 { try row.decode(Int32.self) }
}

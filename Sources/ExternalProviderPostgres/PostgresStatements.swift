import ExternalProviderCore
import ExternalProviderStore
import Foundation
import Logging
import PostgresNIO

// Every statement an account read or write runs, as named prepared statements. PostgresNIO prepares each once per
// connection and then only binds and executes it, so PostgreSQL does not parse, analyze and plan it on
// every request (bench/README.md has the profile). Every parameter is cast, since a prepared
// statement's types come from its text, not from the values of its first use. Names are written out:
// PostgreSQL cuts a name at 63 bytes.

/// The accounts of several users with this store's master key id beside them: rows of (master key id,
/// user, version, global id, provider, sealed key, name, sealed organization), one per key, or one with
/// no key; a single row of the master key id and `NULL`s when none of them has an account; none at all
/// when the database records no master key.
struct ReadAccountsClaiming: PostgresPreparedStatement {
    static let name = "ep_read_accounts_claiming"
    static let sql = """
        SELECT m.value, a.user_id, a.version, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
        FROM store_meta m
        LEFT JOIN (user_account a LEFT JOIN provider_key k ON k.user_id = a.user_id) ON a.user_id = ANY($1::text[])
        WHERE m.name = 'master_key_id'
        """
    typealias Row = (Data?, String?, Int64?, UUID?, String?, Data?, String?, Data?)

    let users: [String]

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(users)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// One user's account, for reads, which never seal: rows of (version, global id, provider, sealed key,
/// name, sealed organization), one per key, or one with no key.
struct ReadAccount: PostgresPreparedStatement {
    static let name = "ep_read_account"
    static let sql = """
        SELECT a.version, a.global_id, k.provider, k.api_key, k.api_key_name, k.organization_key
        FROM user_account a LEFT JOIN provider_key k ON k.user_id = a.user_id WHERE a.user_id = $1::text
        """
    typealias Row = (Int64, UUID, String?, Data?, String?, Data?)

    let user: String

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(user)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// What one statement of one user's change writes: the account's version check and move, one key's
/// insert, update or delete (or nothing, for a new account with no key), and the change's audit entry.
struct GuardedWriteRow: Sendable {
    /// Stored in no table: the statement's own switch between its branches.
    enum Operation: String, Sendable {
        case insert
        case update
        /// An update to a new (key, organization) pair, which starts over with the change's health.
        case updateNewPair = "update_new_pair"
        case delete
        /// A new account with no key yet.
        case accountOnly = "account_only"
    }

    let user: String
    let globalID: UUID
    /// The version the account must still be at; `nil`: there must be no account.
    let expectedVersion: Int64?
    let operation: Operation
    let provider: String?
    let audit: AuditEntry?
    var sealedKey: ByteBuffer? = nil
    var keyName: String? = nil
    var sealedOrganization: ByteBuffer? = nil
    /// For an insert and a new pair: the health it starts with.
    var health: KeyHealth? = nil

    /// The account's version once `rows` rows have landed on it from `version` (`nil`: none yet). A new
    /// account starts at 1 (the column's default), and each landed row moves it on by one.
    static func version(after version: Int64?, rows: Int) -> Int64? {
        rows == 0 ? version : (version ?? 0) + Int64(rows)
    }
}

/// Writes of several users at once, each guarded by its account's version, in one statement and so one
/// commit. Each row lands only if its account is still at the version expected (makes the account, if
/// none was expected and there is none), moves the version on, writes its key and appends its audit
/// entry; the statement returns the users whose row landed. A user may appear once. Rows lock their
/// accounts in the order given, which callers keep sorted by user so that two batches never deadlock.
struct GuardedWrites: PostgresPreparedStatement {
    static let name = "ep_guarded_writes"
    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::text[], $2::uuid[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[],
                $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::text[], $16::bytea[], $17::timestamptz[], $18::text[],
                $19::timestamptz[], $20::text[], $21::text[]) WITH ORDINALITY
            AS i(user_id, global_id, expected, op, provider, audit_at, action, audit_user, fields, application, request_id, verification,
                api_key, api_key_name, organization_key, verified_at, health, health_checked_at, health_code, audit_providers, position)),
        account AS (
            INSERT INTO user_account AS a (user_id, global_id, created_at)
            SELECT user_id, global_id, $3::timestamptz FROM input ORDER BY position
            ON CONFLICT (user_id) DO UPDATE SET version = a.version + 1
                WHERE a.version = (SELECT i.expected FROM input i WHERE i.user_id = excluded.user_id)
            RETURNING user_id),
        inserted AS (
            INSERT INTO provider_key (user_id, provider, api_key, api_key_name, organization_key, verified_at, created_at, updated_at,
                health, health_checked_at, health_code)
            SELECT i.user_id, i.provider, i.api_key, i.api_key_name, i.organization_key, i.verified_at, $3::timestamptz, $3::timestamptz,
                i.health, i.health_checked_at, i.health_code
            FROM input i JOIN account USING (user_id) WHERE i.op = 'insert'
            RETURNING user_id),
        updated AS (
            UPDATE provider_key k SET api_key = i.api_key, api_key_name = i.api_key_name, organization_key = i.organization_key,
                updated_at = $3::timestamptz,
                verified_at = CASE WHEN i.op = 'update_new_pair' THEN i.verified_at ELSE k.verified_at END,
                health = CASE WHEN i.op = 'update_new_pair' THEN i.health ELSE k.health END,
                health_checked_at = CASE WHEN i.op = 'update_new_pair' THEN i.health_checked_at ELSE k.health_checked_at END,
                health_code = CASE WHEN i.op = 'update_new_pair' THEN i.health_code ELSE k.health_code END
            FROM input i JOIN account USING (user_id)
            WHERE i.op IN ('update', 'update_new_pair') AND k.user_id = i.user_id AND k.provider = i.provider
            RETURNING k.user_id),
        deleted AS (
            DELETE FROM provider_key k USING input i JOIN account USING (user_id)
            WHERE i.op = 'delete' AND k.user_id = i.user_id AND k.provider = i.provider
            RETURNING k.user_id),
        written AS (
            SELECT user_id FROM inserted UNION ALL SELECT user_id FROM updated UNION ALL SELECT user_id FROM deleted
            UNION ALL SELECT i.user_id FROM input i JOIN account USING (user_id) WHERE i.op = 'account_only'),
        audited AS (
            INSERT INTO audit_event (at, action, user_id, fields, providers, application, request_id, verification)
            SELECT i.audit_at, i.action, i.audit_user, i.fields, i.audit_providers, i.application, i.request_id, i.verification
            FROM input i WHERE i.action IS NOT NULL AND i.user_id IN (SELECT user_id FROM written) ORDER BY i.position)
        SELECT user_id FROM written
        """
    typealias Row = String

    let rows: [GuardedWriteRow]
    let now: Date

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 21)
        bindings.append(rows.map(\.user))
        bindings.append(rows.map(\.globalID))
        bindings.append(now)
        bindings.append(NullableArray(rows.map(\.expectedVersion)))
        bindings.append(rows.map(\.operation.rawValue))
        bindings.append(NullableArray(rows.map(\.provider)))
        bindings.append(NullableArray(rows.map(\.audit?.at)))
        bindings.append(NullableArray(rows.map(\.audit?.action.rawValue)))
        bindings.append(NullableArray(rows.map(\.audit?.user?.rawValue)))
        bindings.append(NullableArray(rows.map { $0.audit.map { AuditField.stored($0.fields) } }))
        bindings.append(NullableArray(rows.map(\.audit?.application)))
        bindings.append(NullableArray(rows.map(\.audit?.requestID)))
        bindings.append(NullableArray(rows.map(\.audit?.verification)))
        bindings.append(NullableArray(rows.map(\.sealedKey)))
        bindings.append(NullableArray(rows.map(\.keyName)))
        bindings.append(NullableArray(rows.map(\.sealedOrganization)))
        let health = rows.map { $0.health.map(KeyHealthColumns.init) }
        bindings.append(NullableArray(health.map { $0?.verifiedAt }))
        bindings.append(NullableArray(health.map { $0?.word }))
        bindings.append(NullableArray(health.map { $0?.checkedAt }))
        bindings.append(NullableArray(health.map { $0?.code }))
        bindings.append(NullableArray(rows.map { $0.audit.map { AuditEntry.stored($0.providers) } }))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }

    /// Runs it; returns the users whose row landed.
    func run(on connection: PostgresConnection, logger: Logger) async throws -> Set<String> {
        var landed: Set<String> = []
        for try await user in try await connection.execute(self, logger: logger) { landed.insert(user) }
        return landed
    }
}

/// A one-dimensional array whose elements may be `NULL`, in PostgreSQL's binary format, which
/// PostgresNIO's own `Array` encoding cannot express.
struct NullableArray<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable {
    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    let elements: [Element?]

    init(_ elements: [Element?]) {
        self.elements = elements
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(elements.isEmpty ? 0 : 1, as: Int32.self)  // dimensions
        buffer.writeInteger(elements.contains { $0 == nil } ? 1 : 0, as: Int32.self)  // has NULLs
        buffer.writeInteger(Element.psqlType.rawValue)
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(1, as: Int32.self)  // lower bound
        for element in elements {
            guard let element else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(0, as: Int32.self)
            let start = buffer.writerIndex
            element.encode(into: &buffer, context: context)
            buffer.setInteger(Int32(buffer.writerIndex - start), at: lengthIndex)
        }
    }
}

import ExternalProviderCore
import ExternalProviderTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderStore

/// Decides whether concurrent writes to two fields of one record could have happened one at a time.
///
/// Each write sets one field to a unique value and reports the record as it was right after it. If the
/// store lost an update (two writers both read the old record), no serial order explains the reports.
struct TwoFieldWrite {
    enum Field { case name, organization }

    let field: Field
    let value: String
    let seen: ProviderKey?

    func seenValue(of field: Field) -> String? {
        switch field {
        case .name: seen?.apiKeyName
        case .organization: seen?.organizationKey
        }
    }
}

func serialOrderExplains(_ writes: [TwoFieldWrite], from initial: ProviderKey, to final: ProviderKey) -> Bool {
    func value(_ key: ProviderKey, _ field: TwoFieldWrite.Field) -> String? {
        field == .name ? key.apiKeyName : key.organizationKey
    }
    func other(_ field: TwoFieldWrite.Field) -> TwoFieldWrite.Field { field == .name ? .organization : .name }

    // Every writer sees its own write.
    guard writes.allSatisfy({ $0.seenValue(of: $0.field) == $0.value }) else { return false }
    var state = initial
    var remaining = writes
    while !remaining.isEmpty {
        // The writes that can come next saw the current value of the field they did not write.
        let next = remaining.filter { $0.seenValue(of: other($0.field)) == value(state, other($0.field)) }
        guard let field = next.first?.field, next.allSatisfy({ $0.field == field }) else { return false }
        let values = Set(next.map(\.value))
        remaining.removeAll { values.contains($0.value) && $0.field == field }
        // The last of this run is the value every later write of the other field saw first.
        let laterOthers = remaining.filter { $0.field != field }
        let referenced = values.intersection(laterOthers.compactMap { $0.seenValue(of: field) })
        let last: String
        if laterOthers.isEmpty {
            guard let finalValue = value(final, field), values.contains(finalValue) else { return false }
            last = finalValue
        } else {
            guard referenced.count == 1, let only = referenced.first else { return false }
            last = only
        }
        if field == .name { state.apiKeyName = last } else { state.organizationKey = last }
    }
    return state == final
}

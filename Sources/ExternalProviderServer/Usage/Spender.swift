import ExternalProviderCore

/// Whose limits a relayed request counts against: an application spending one user's keys. Limits
/// (requests per minute, token budgets) hold per pair, so one user's traffic never uses up another's.
struct Spender: Hashable, Sendable, CustomStringConvertible {
    let application: ExactText
    let user: UserID

    init(application: String, user: UserID) {
        self.application = ExactText(application)
        self.user = user
    }

    var description: String { "application '\(application.value)' for user '\(user)'" }
}

import ExternalProviderCore

/// All a store does for a serving instance: keep keys, applications and the usage ledger.
public typealias ServingStore = KeyStore & ApplicationRegistry & UsageLedger

import ExternalProviderPostgres
import ExternalProviderStore
import Foundation

/// The settings of every command that opens the store.
public enum StoreSettings {
    public static let dataDir = Setting<String>(
        "data-dir", "Where the store lives, created with mode 0700.", kind: .value, default: defaultDataDirectory,
        shown: "$XDG_DATA_HOME/external-provider, else ~/.local/share/external-provider", expecting: "a path", parse: { $0 })
    public static let masterKeyFile = Setting<String?>.text(
        "master-key-file",
        "File holding the master key (base64 of 32 bytes); or give the key itself in \(MasterKeySource.environmentVariable).",
        shown: "<data-dir>/master.key, made on first start; with --database-url it must be given")
    public static let databaseURL = Setting<String?>.text(
        "database-url",
        "Keep keys in this PostgreSQL database (postgres://user:password@host:5432/db?sslmode=require), shared by several instances, instead of the data dir. Prefer the variable: a flag's value shows in every process listing.",
        key: ["database", "url"], isSecret: true)

    /// The application id itself, for the commands that call a running server: only in the environment,
    /// since a flag's value is in every process listing.
    public static let applicationID = Setting<String?>.text("app-id", "The application id.", isSecret: true)

    public static let all: [SettingDeclaration] = [dataDir.declaration, masterKeyFile.declaration, databaseURL.declaration, applicationID.declaration]

    /// What to say of a database URL given as a flag with its password in it: it shows in every process
    /// listing. `nil` when there is nothing to say.
    public static func passwordInFlagWarning(_ flagText: String?) -> String? {
        guard let flagText, (try? DatabaseURL(flagText))?.password != nil else { return nil }
        let declaration = databaseURL.declaration
        return "the password in \(declaration.option) shows in every process listing; give the URL in \(declaration.variable) instead"
    }

    /// `$XDG_DATA_HOME/external-provider`, else `~/.local/share/external-provider`.
    public static func defaultDataDirectory(_ environment: [String: String]) -> String {
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            return (xdg as NSString).appendingPathComponent("external-provider")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".local/share/external-provider")
    }
}

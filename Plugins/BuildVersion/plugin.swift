import Foundation
import PackagePlugin

/// Writes `BuildVersion.swift`, which names the commit the target is built from, for `--version`. It is
/// written again whenever git's HEAD, or the branch it points to, moves; outside a git checkout the
/// commit is `unknown`.
@main
struct BuildVersion: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildVersion.swift")
        let root = context.package.directoryURL
        let git = root.appending(path: ".git")
        var inputs: [URL] = []
        let head = git.appending(path: "HEAD")
        if let text = try? String(contentsOf: head, encoding: .utf8) {
            inputs.append(head)
            if text.hasPrefix("ref: ") {
                inputs.append(git.appending(path: text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)))
            }
            inputs.append(git.appending(path: "packed-refs"))
        }
        let script = """
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            printf '/// The commit this build is from, written by the BuildVersion plugin.\\nlet buildCommit = "%s"\\n' "$commit" > "$2"
            """
        return [
            .buildCommand(
                displayName: "Writing the commit the build is from", executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", root.path, output.path],
                inputFiles: inputs.filter { FileManager.default.fileExists(atPath: $0.path) }, outputFiles: [output])
        ]
    }
}

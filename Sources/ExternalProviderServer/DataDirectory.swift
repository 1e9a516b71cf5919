import Foundation
import Logging

/// The data dir holds every key the server keeps: only its owner may enter it.
enum DataDirectory {
    static func prepare(_ path: String, logger: Logger) throws {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ServeFailure("--data-dir \(path) is a file, not a directory") }
            let mode = (try files.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? 0
            if mode & 0o077 != 0 {
                logger.warning("data dir is readable by other users; run chmod 700 on it", metadata: ["path": "\(path)"])
            }
        } else {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }
}

/// Why `serve` cannot start, said in one line that also says what to do.
public struct ServeFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

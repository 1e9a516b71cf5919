import Foundation
import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on stderr, with `time`, `level`, `label`, `message` and
/// every metadata field, for log pipelines that parse lines rather than read them.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// One line at a time, so lines from concurrent requests never interleave.
    private static let output = Mutex(FileHandle.standardError)

    public func log(event: LogEvent) {
        var object: [String: String] = [
            "time": Date().formatted(.iso8601), "level": event.level.rawValue, "label": label, "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, call in call }) {
            object[key] = "\(value)"
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(UInt8(ascii: "\n"))
        Self.output.withLock { $0.write(line) }
    }
}

/// How `serve` writes its log: `text` (swift-log's stream handler) or `json`.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// Sets every logger's handler; call once, before the first logger is made.
    public func bootstrap() {
        switch self {
        case .text: LoggingSystem.bootstrap(StreamLogHandler.standardError)
        case .json: LoggingSystem.bootstrap(JSONLogHandler.init)
        }
    }
}

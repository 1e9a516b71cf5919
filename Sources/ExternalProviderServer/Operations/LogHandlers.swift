import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a log line may carry of text a client chose (a path, a user id, an error's description): every
/// control, format or separator character is written as `\u{XXXX}`. A line separator (U+2028), a
/// paragraph separator (U+2029) or a newline would start what looks like a new line, and a
/// bidirectional control (U+202E) reorders the line on screen, so either could forge `key=value` pairs.
enum LogText {
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                escaped += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        // Printable ASCII, the bulk of every line, needs no lookup.
        if scalar.value >= 0x20, scalar.value < 0x7F { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }
}

/// Every log line `serve` writes, on stderr, one whole line at a time, with every message, key and value
/// escaped (`LogText`):
/// - `text`: swift-log's stream format, `time level label: key=value [source] message`;
/// - `json`: one object per line with `time`, `level`, `label`, `message` and every metadata field, for
///   log pipelines that parse lines rather than read them (JSON itself lets U+2028 and bidirectional
///   controls through, so values are escaped as in the text format).
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let format: LogFormat

    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, call in call })
        let message = LogText.escaped(event.message.description)
        switch format {
        case .text:
            var line = "\(Self.timestamp()) \(event.level) \(label):"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += " \(LogText.escaped(key))=\(LogText.escaped("\(value)"))"
            }
            line += " [\(event.source)] \(message)\n"
            StandardError.write(Data(line.utf8))
        case .json:
            var object = ["time": Date().formatted(.iso8601), "level": event.level.rawValue, "label": label, "message": message]
            for (key, value) in merged {
                object[LogText.escaped(key)] = LogText.escaped("\(value)")
            }
            guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
            line.append(UInt8(ascii: "\n"))
            StandardError.write(line)
        }
    }

    private static func timestamp() -> String {
        var buffer = [Int8](repeating: 0, count: 64)
        var now = time(nil)
        guard let local = localtime(&now) else { return "<unknown>" }
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", local)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Standard error, one whole line at a time, so lines from concurrent requests never interleave.
enum StandardError {
    private static let output = Mutex(FileHandle.standardError)

    static func write(_ line: Data) {
        output.withLock { $0.write(line) }
    }
}

/// How `serve` writes its log: `text` or `json`.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// Sets every logger's handler; call once, before the first logger is made.
    public func bootstrap() {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: self) }
    }
}

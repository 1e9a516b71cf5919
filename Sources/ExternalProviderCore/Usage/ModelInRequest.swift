/// What a relayed request names as its model, read once from its body or path.
public enum RequestedModel: Sendable, Equatable {
    /// The request takes no model: a listing, a file, anything but a generation.
    case none
    /// The provider's model list, which an application with a model list sees filtered.
    case listing
    /// The request names this model.
    case named(String)
    /// A batch of requests, each with a model of its own, which cannot be checked here.
    case batch
    /// The request should name a model and its body cannot say which: not a JSON object, `model` given
    /// twice (a provider might read either), no `model`, or too long to read within the bound.
    case unreadable(Unreadable)

    public enum Unreadable: Sendable, Equatable {
        case notJSON
        case twice
        case missing
        case tooLong
    }
}

/// What a relayed request's JSON body says that the limits need, read in one pass over its bytes as a
/// JSON parser would, escapes and all, with no tree built (an 8 MiB body of tiny objects would make a
/// parser's tree many times its size): the top-level `model`, noticing one given twice, which
/// `JSONSerialization` would hide by keeping the last; whether it streams and asks for the stream's usage;
/// whether it runs in the background; and the models its tools name.
public struct RequestBody: Sendable, Equatable {
    /// `.named`, or why not: `.unreadable(.notJSON)`, `.twice` or `.missing`.
    public var model: RequestedModel = .unreadable(.missing)
    /// `"stream": true`.
    public var streams = false
    /// `"stream_options": {"include_usage": true}`.
    public var asksForUsage = false
    /// `"background": true` (OpenAI's Responses API): the answer comes later, elsewhere.
    public var background = false
    /// The `model` of each object in `tools` (OpenAI's image generation tool names its own).
    public var toolModels: [String] = []

    public init() {}

    public static func read(_ body: [UInt8]) -> RequestBody {
        var scanner = ModelField.Scanner(body)
        return scanner.topLevel()
    }
}

/// The top-level `model` alone, for callers that need no more.
public enum ModelField {
    public static func read(_ body: [UInt8]) -> RequestedModel {
        RequestBody.read(body).model
    }

    struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) {
            self.bytes = bytes
        }

        mutating func topLevel() -> RequestBody {
            var read = RequestBody()
            var model: String?
            var seen = false
            // Every `include_usage` given: the stream asks for its usage only if all of them say true.
            var usage: [Bool] = []
            let whole = object { key, scanner in
                if Self.namesModel(key) {
                    if seen {
                        read.model = .unreadable(.twice)
                        return false
                    }
                    seen = true
                    if scanner.peek == UInt8(ascii: "\"") {
                        guard let value = scanner.string() else { return false }
                        model = value
                        return true
                    }
                    return scanner.skipValue()
                }
                // A key given twice is read the way that refuses more: parsers differ on which one wins.
                switch key.lowercased() {
                case "stream":
                    guard let isTrue = scanner.isTrue() else { return false }
                    read.streams = read.streams || isTrue
                    return true
                case "background":
                    guard let isTrue = scanner.isTrue() else { return false }
                    read.background = read.background || isTrue
                    return true
                case "stream_options":
                    guard scanner.peek == UInt8(ascii: "{") else {
                        usage.append(false)
                        return scanner.skipValue()
                    }
                    return scanner.object { key, scanner in
                        guard key.lowercased() == "include_usage" else { return scanner.skipValue() }
                        guard let isTrue = scanner.isTrue() else { return false }
                        usage.append(isTrue)
                        return true
                    }
                case "tools":
                    guard scanner.peek == UInt8(ascii: "[") else { return scanner.skipValue() }
                    return scanner.array { scanner in
                        guard scanner.peek == UInt8(ascii: "{") else { return scanner.skipValue() }
                        return scanner.object { key, scanner in
                            guard Self.namesModel(key), scanner.peek == UInt8(ascii: "\"") else { return scanner.skipValue() }
                            guard let tool = scanner.string() else { return false }
                            read.toolModels.append(tool)
                            return true
                        }
                    }
                default:
                    return scanner.skipValue()
                }
            }
            read.asksForUsage = !usage.isEmpty && usage.allSatisfy { $0 }
            if read.model == .unreadable(.twice) { return read }
            skipWhitespace()
            guard whole, index == bytes.count else {
                read.model = .unreadable(.notJSON)
                return read
            }
            // A `model` that is not a string reads as no model a provider would take.
            read.model = model.map(RequestedModel.named) ?? (seen ? .unreadable(.notJSON) : .unreadable(.missing))
            return read
        }

        /// An object, each member's value left to `member`, which must consume it; `false` if malformed
        /// or `member` says so.
        mutating func object(_ member: (String, inout Scanner) -> Bool) -> Bool {
            skipWhitespace()
            guard take(UInt8(ascii: "{")) else { return false }
            skipWhitespace()
            if take(UInt8(ascii: "}")) { return true }
            while true {
                skipWhitespace()
                guard let key = string() else { return false }
                skipWhitespace()
                guard take(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                guard member(key, &self) else { return false }
                skipWhitespace()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "}"))
            }
        }

        /// An array, each element left to `element`.
        mutating func array(_ element: (inout Scanner) -> Bool) -> Bool {
            guard take(UInt8(ascii: "[")) else { return false }
            skipWhitespace()
            if take(UInt8(ascii: "]")) { return true }
            while true {
                skipWhitespace()
                guard element(&self) else { return false }
                skipWhitespace()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "]"))
            }
        }

        /// Whether the value is the literal `true`, skipping it; `nil` if malformed.
        mutating func isTrue() -> Bool? {
            let word = Array("true".utf8)
            let isTrue = bytes.count - index >= word.count && bytes[index..<(index + word.count)].elementsEqual(word)
            guard skipValue() else { return nil }
            return isTrue
        }

        /// `model` in any case: a parser that matches keys to fields case-insensitively (Go's) reads `Model`
        /// as the model, so a second spelling counts as the model given twice.
        static func namesModel(_ key: String) -> Bool {
            key.utf8.count == 5 && key.utf8.elementsEqual("model".utf8) { ($0 | 0x20) == $1 }
        }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            index += 1
            return true
        }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        /// A string, its escapes decoded; `nil` if malformed.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() {
                if !raw.isEmpty {
                    scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                    raw.removeAll(keepingCapacity: true)
                }
            }
            while let byte = peek {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    guard let escaped = peek else { return nil }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{8}")
                    case UInt8(ascii: "f"): scalars.append("\u{C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard var unit = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(unit) {
                            // A surrogate pair: the low half must follow as another \u escape.
                            guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(unit) else { return nil }
                        scalars.append(scalar)
                    default: return nil
                    }
                case 0..<0x20:
                    return nil
                default:
                    raw.append(byte)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: return nil
                }
                value = value * 16 + digit
            }
            return value
        }

        /// Skips one value of any kind; `false` if malformed.
        mutating func skipValue() -> Bool {
            guard let byte = peek else { return false }
            switch byte {
            case UInt8(ascii: "\""):
                return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                return skipNested()
            default:
                // A number, true, false or null: up to the next delimiter.
                let start = index
                while let next = peek, next != UInt8(ascii: ","), next != UInt8(ascii: "}"), next != UInt8(ascii: "]"),
                    next != 0x20, next != 0x09, next != 0x0A, next != 0x0D
                {
                    index += 1
                }
                return index > start
            }
        }

        /// Skips an object or an array, however deep, minding the strings inside it.
        private mutating func skipNested() -> Bool {
            var depth = 0
            while let byte = peek {
                switch byte {
                case UInt8(ascii: "\""):
                    guard string() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return true
                    }
                default:
                    break
                }
                index += 1
            }
            return false
        }
    }
}

/// What the gateway needs from a request body, found by walking the top-level JSON object's
/// bytes once without building a document: the `model` name, whether `stream` is true, and the
/// byte range of the prompt (`prompt` or `messages`) for prefix-aware routing. The body itself is
/// forwarded untouched.
public struct ScannedBody: Sendable, Equatable {
    /// The `model` string, unescaped; nil when absent or not a string.
    public var model: String?
    /// True when `"stream": true`.
    public var stream = false
    /// Byte offsets (from the start of the scanned bytes) of the `messages` value, or else the
    /// `prompt` value, as raw JSON text.
    public var prompt: Range<Int>?

    /// A scan result from its parts; the defaults are what an empty object `{}` yields.
    public init(model: String? = nil, stream: Bool = false, prompt: Range<Int>? = nil) {
        self.model = model
        self.stream = stream
        self.prompt = prompt
    }
}

/// A body that is not a JSON object (or is cut short), with the offset where scanning stopped.
public struct BodyScanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset, from the start of the scanned bytes, where scanning stopped.
    public var offset: Int
    /// What was expected or wrong at that offset, in words.
    public var reason: String
    /// The offset and the reason as one message.
    public var description: String { "invalid JSON body at byte \(offset): \(reason)" }
}

/// The scanner. Strings are skipped with their escapes, nested values by bracket depth; only
/// the top level is read, so the cost is one pass over the bytes with no allocation beyond the
/// model name.
public enum BodyScanner {
    /// Scans any byte collection: in place when its storage is contiguous, otherwise from a copy.
    public static func scan(_ bytes: some Collection<UInt8>) throws(BodyScanError) -> ScannedBody {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(BodyScanError) in try scan(UnsafeRawBufferPointer(buffer)) }
        } ?? Array(bytes).withUnsafeBytes { buffer in
            Result { () throws(BodyScanError) in try scan(buffer) }
        }
        return try result.get()
    }

    /// Finds `model`, `stream` and the prompt range in one pass; throws when the bytes are not a JSON object.
    public static func scan(_ bytes: UnsafeRawBufferPointer) throws(BodyScanError) -> ScannedBody {
        var cursor = Cursor(bytes: bytes)
        var result = ScannedBody()
        var promptRange: Range<Int>?
        var messagesRange: Range<Int>?
        cursor.skipWhitespace()
        try cursor.expect(UInt8(ascii: "{"))
        cursor.skipWhitespace()
        if cursor.peek == UInt8(ascii: "}") {
            return result
        }
        while true {
            cursor.skipWhitespace()
            let keyStart = cursor.position
            try cursor.skipString()
            let key = Key(bytes: bytes, range: (keyStart + 1)..<(cursor.position - 1))
            cursor.skipWhitespace()
            try cursor.expect(UInt8(ascii: ":"))
            cursor.skipWhitespace()
            let valueStart = cursor.position
            switch key {
            case .model:
                if cursor.peek == UInt8(ascii: "\"") {
                    result.model = try cursor.readString()
                } else {
                    try cursor.skipValue()
                }
            case .stream:
                try cursor.skipValue()
                result.stream = cursor.position - valueStart == 4 && bytes[valueStart] == UInt8(ascii: "t")
            case .prompt:
                try cursor.skipValue()
                promptRange = valueStart..<cursor.position
            case .messages:
                try cursor.skipValue()
                messagesRange = valueStart..<cursor.position
            case .other:
                try cursor.skipValue()
            }
            cursor.skipWhitespace()
            guard let next = cursor.peek else { throw cursor.error("the object is not closed") }
            cursor.position += 1
            if next == UInt8(ascii: "}") { break }
            guard next == UInt8(ascii: ",") else { throw BodyScanError(offset: cursor.position - 1, reason: "expected ',' or '}'") }
        }
        result.prompt = messagesRange ?? promptRange
        return result
    }

    enum Key {
        case model, stream, prompt, messages, other

        init(bytes: UnsafeRawBufferPointer, range: Range<Int>) {
            func equals(_ word: StaticString) -> Bool {
                guard word.utf8CodeUnitCount == range.count else { return false }
                let start = word.utf8Start
                for i in 0..<range.count where start[i] != bytes[range.lowerBound + i] { return false }
                return true
            }
            if equals("model") { self = .model }
            else if equals("stream") { self = .stream }
            else if equals("prompt") { self = .prompt }
            else if equals("messages") { self = .messages }
            else { self = .other }
        }
    }

    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        func error(_ reason: String) -> BodyScanError { BodyScanError(offset: position, reason: reason) }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) throws(BodyScanError) {
            guard peek == byte else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
            position += 1
        }

        /// Skips a string starting at the opening quote; leaves the cursor after the closing quote.
        mutating func skipString() throws(BodyScanError) {
            try expect(UInt8(ascii: "\""))
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    position += 1
                    return
                }
                position += byte == UInt8(ascii: "\\") ? 2 : 1
            }
            throw error("unterminated string")
        }

        /// Reads and unescapes a string.
        mutating func readString() throws(BodyScanError) -> String {
            let start = position + 1
            try skipString()
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<(position - 1)])
            if !raw.contains(UInt8(ascii: "\\")) {
                return String(decoding: raw, as: UTF8.self)
            }
            return try Self.unescape(raw, at: start)
        }

        static func unescape(_ raw: UnsafeRawBufferPointer, at offset: Int) throws(BodyScanError) -> String {
            var scalars = String.UnicodeScalarView()
            var utf8: [UInt8] = []
            var i = 0
            func flush() {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll(keepingCapacity: true)
            }
            func hex(_ at: Int) throws(BodyScanError) -> UInt32 {
                guard at + 4 <= raw.count, let value = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: raw[at..<(at + 4)]), as: UTF8.self), radix: 16) else {
                    throw BodyScanError(offset: offset + at, reason: "bad \\u escape")
                }
                return value
            }
            while i < raw.count {
                let byte = raw[i]
                guard byte == UInt8(ascii: "\\"), i + 1 < raw.count else {
                    utf8.append(byte)
                    i += 1
                    continue
                }
                let escaped = raw[i + 1]
                i += 2
                switch escaped {
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "u"):
                    var value = try hex(i)
                    i += 4
                    if (0xD800..<0xDC00).contains(value), i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") {
                        let low = try hex(i + 2)
                        if (0xDC00..<0xE000).contains(low) {
                            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        }
                    }
                    flush()
                    scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
                default: utf8.append(escaped)
                }
            }
            flush()
            return String(scalars)
        }

        /// Skips any JSON value.
        mutating func skipValue() throws(BodyScanError) {
            guard let first = peek else { throw error("expected a value") }
            switch first {
            case UInt8(ascii: "\""):
                try skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while position < bytes.count {
                    let byte = bytes[position]
                    switch byte {
                    case UInt8(ascii: "\""):
                        try skipString()
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            position += 1
                            return
                        }
                    default:
                        break
                    }
                    position += 1
                }
                throw error("unterminated \(first == UInt8(ascii: "{") ? "object" : "array")")
            default:
                // number, true, false, null
                let start = position
                while position < bytes.count {
                    switch bytes[position] {
                    case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D:
                        guard position > start else { throw error("expected a value") }
                        return
                    default:
                        position += 1
                    }
                }
                throw error("the object is not closed")
            }
        }
    }
}

/// Hashes of a prompt's leading blocks, each covering everything before it (block i's hash
/// depends on blocks 0...i), so two prompts that share their first k blocks share their first k
/// hashes. FNV-1a, 64 bits.
public enum PrefixHasher {
    /// Hashes of up to `maxBlocks` blocks of `blockSize` bytes, a trailing partial block included.
    public static func blockHashes(_ bytes: UnsafeRawBufferPointer, blockSize: Int, maxBlocks: Int) -> [UInt64] {
        guard blockSize > 0, !bytes.isEmpty else { return [] }
        var hashes: [UInt64] = []
        let blocks = min(maxBlocks, (bytes.count + blockSize - 1) / blockSize)
        hashes.reserveCapacity(blocks)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for block in 0..<blocks {
            let end = min(bytes.count, (block + 1) * blockSize)
            for i in (block * blockSize)..<end {
                hash = (hash ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3
            }
            // A full block only: a trailing partial block is hashed too, so short prompts still route.
            hashes.append(hash)
        }
        return hashes
    }
}

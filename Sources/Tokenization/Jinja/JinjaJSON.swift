import Foundation

extension JinjaValue {
    /// Parses JSON text into a value, keeping object keys in document order (Foundation's
    /// `JSONSerialization` loses it, and templates print tool schemas in that order).
    /// Integers without fraction or exponent become `.int`; other numbers `.double`.
    public init(json: String) throws {
        var parser = JinjaJSONParser(bytes: Array(json.utf8))
        parser.skipSpace()
        let value = try parser.parseValue(depth: 0)
        parser.skipSpace()
        guard parser.pos == parser.bytes.count else { throw parser.fail("trailing characters") }
        self = value
    }
}

/// A small recursive-descent JSON reader over UTF-8 bytes, depth-bounded so that hostile input
/// cannot overflow the stack.
struct JinjaJSONParser {
    let bytes: [UInt8]
    var pos = 0
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ what: String) -> ChatTemplateError {
        .runtime("invalid JSON at byte \(pos): \(what)")
    }

    mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[pos]) { pos += 1 }
    }

    mutating func expect(_ literal: String, _ value: JinjaValue) throws -> JinjaValue {
        let lit = Array(literal.utf8)
        guard pos + lit.count <= bytes.count, Array(bytes[pos..<pos + lit.count]) == lit else {
            throw fail("unexpected token")
        }
        pos += lit.count
        return value
    }

    mutating func parseValue(depth: Int) throws -> JinjaValue {
        guard depth < Self.maxDepth else { throw fail("nesting too deep") }
        guard pos < bytes.count else { throw fail("unexpected end") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var object = JinjaObject()
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected key") }
                let key = try parseString()
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                pos += 1
                skipSpace()
                object[key] = try parseValue(depth: depth + 1)
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            pos += 1
            var array: [JinjaValue] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(array) }
            while true {
                skipSpace()
                array.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(array) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .none)
        default: return try parseNumber()
        }
    }

    mutating func parseNumber() throws -> JinjaValue {
        let start = pos
        var integral = true
        while pos < bytes.count {
            let b = bytes[pos]
            if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") {
                pos += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                integral = false
                pos += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if integral, let i = Int(text) { return .int(i) }
        guard !text.isEmpty, let d = Double(text) else { throw fail("bad number '\(text)'") }
        return .double(d)
    }

    mutating func parseString() throws -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while pos < bytes.count {
            let b = bytes[pos]
            pos += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard b == UInt8(ascii: "\\") else { out.append(b); continue }
            guard pos < bytes.count else { break }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var code = try hex4()
                // A UTF-16 surrogate pair spells one scalar outside the BMP.
                if code >= 0xD800, code < 0xDC00, pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"),
                   bytes[pos + 1] == UInt8(ascii: "u")
                {
                    pos += 2
                    let low = try hex4()
                    code = (0xDC00..<0xE000).contains(low) ? 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) : 0xFFFD
                }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(e)
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count,
              let code = UInt32(String(decoding: bytes[pos..<pos + 4], as: UTF8.self), radix: 16)
        else { throw fail("bad \\u escape") }
        pos += 4
        return code
    }
}

import Foundation

/// Python's `str()`, `repr()` and transformers' `tojson` for template values; templates print
/// these verbatim, so they must match Python byte for byte.
extension JinjaValue {
    /// What `{{ value }}` prints: Python `str(value)`, with undefined printing as empty.
    public var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// Python `repr(value)`; containers print their elements this way.
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s): return Self.pythonStringRepr(s)
        case .array(let a): return "[" + a.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .object(let o):
            let items = o.pairs.map { Self.pythonStringRepr($0.key) + ": " + $0.value.pythonRepr }
            return "{" + items.joined(separator: ", ") + "}"
        }
    }

    /// Python float repr: shortest round-trip digits, which Swift's description also produces;
    /// only the spellings of the special values differ.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return "\(d)"
    }

    /// Python string repr: single quotes unless the text has a single quote and no double one.
    static func pythonStringRepr(_ s: String) -> String {
        let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case quote: out.append("\\"); out.append(quote)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out.append(contentsOf: String(format: "\\x%02x", scalar.value).unicodeScalars)
                } else {
                    out.append(scalar)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    /// `json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sortKeys)`, which is
    /// transformers' `tojson` filter (unlike Jinja's own, it does not HTML-escape).
    func json(indent: String?, sortKeys: Bool = false, separators: (String, String)? = nil) throws -> String {
        var out = ""
        let itemSeparator = separators?.0 ?? (indent == nil ? ", " : ",")
        let keySeparator = separators?.1 ?? ": "
        try writeJSON(into: &out, indent: indent, level: 0, sortKeys: sortKeys,
                      itemSeparator: itemSeparator, keySeparator: keySeparator)
        return out
    }

    private func writeJSON(into out: inout String, indent: String?, level: Int, sortKeys: Bool,
                           itemSeparator: String, keySeparator: String) throws {
        // Recursion here follows the value's nesting, which the evaluator already bounds.
        func newline(_ depth: Int) {
            guard let indent else { return }
            out += "\n" + String(repeating: indent, count: depth)
        }
        switch self {
        case .undefined:
            throw ChatTemplateError.runtime("Object of type Undefined is not JSON serializable")
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else {
                out += Self.pythonFloat(d)
            }
        case .string(let s): out += Self.jsonString(s)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (i, element) in a.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                try element.writeJSON(into: &out, indent: indent, level: level + 1, sortKeys: sortKeys,
                                      itemSeparator: itemSeparator, keySeparator: keySeparator)
            }
            newline(level)
            out += "]"
        case .object(let o):
            if o.count == 0 { out += "{}"; return }
            out += "{"
            var pairs = o.pairs
            if sortKeys { pairs.sort { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } }
            for (i, pair) in pairs.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                out += Self.jsonString(pair.key) + keySeparator
                try pair.value.writeJSON(into: &out, indent: indent, level: level + 1, sortKeys: sortKeys,
                                         itemSeparator: itemSeparator, keySeparator: keySeparator)
            }
            newline(level)
            out += "}"
        }
    }

    /// A JSON string as Python's json module writes it with `ensure_ascii=False`.
    static func jsonString(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": out.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": out.append(contentsOf: "\\f".unicodeScalars)
            default:
                if scalar.value < 0x20 {
                    out.append(contentsOf: String(format: "\\u%04x", scalar.value).unicodeScalars)
                } else {
                    out.append(scalar)
                }
            }
        }
        out.append("\"")
        return String(out)
    }
}

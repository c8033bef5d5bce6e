import Foundation

/// Jinja's built-in filters that chat templates use, plus transformers' `tojson`.
enum JinjaFilters {
    /// Filter names the parser accepts; anything else is a syntax error, as in Jinja.
    static let known: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent",
        "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson",
        "trim", "unique", "upper", "wordcount",
    ]
}

extension JinjaInterpreter {
    func applyFilter(_ name: String, to value: JinjaValue, _ positional: [JinjaValue],
                     _ keyword: [(String, JinjaValue)]) throws -> JinjaValue {
        let args = JinjaArgs(positional: positional, keyword: keyword, function: name)
        switch name {
        case "safe", "e", "escape":
            // transformers renders without autoescaping; `escape` is rare in chat templates.
            return name == "safe" ? value : .string(escapeHTML(value.pythonString))
        case "abs":
            if case .int(let i) = value { return i == .min ? .double(-Double(i)) : .int(abs(i)) }
            guard let d = value.numberValue else { throw ChatTemplateError.runtime("bad operand type for abs(): '\(value.typeName)'") }
            return .double(abs(d))
        case "attr":
            return try attribute(of: value, try args.string(0, "name") ?? "", describe: .literal(value))
        case "capitalize": return .string(JinjaStrings.capitalize(value.pythonString))
        case "title": return .string(JinjaStrings.jinjaTitle(value.pythonString))
        case "upper": return .string(value.pythonString.uppercased())
        case "lower": return .string(value.pythonString.lowercased())
        case "trim":
            return .string(JinjaStrings.strip(value.pythonString, chars: try args.string(0, "chars"), leading: true, trailing: true))
        case "count", "length":
            guard let n = try JinjaSequence.length(value) else {
                throw ChatTemplateError.runtime("object of type '\(value.typeName)' has no len()")
            }
            return .int(n)
        case "d", "default":
            let fallback = args.value(0, "default_value") ?? .string("")
            return args.bool(1, "boolean", default: false) ? (value.isTruthy ? value : fallback)
                : (value.isDefined ? value : fallback)
        case "first": return try JinjaSequence.items(value).first ?? .undefined
        case "last":
            if case .object = value { throw ChatTemplateError.runtime("'dict' object is not reversible") }
            return try JinjaSequence.items(value).last ?? .undefined
        case "float":
            switch value {
            case .double: return value
            case .int, .bool: return .double(value.numberValue ?? 0)
            case .string(let s): return Double(JinjaStrings.strip(s, chars: nil, leading: true, trailing: true)).map { .double($0) } ?? (args.value(0, "default") ?? .double(0))
            default: return args.value(0, "default") ?? .double(0)
            }
        case "int": return intFilter(value, args)
        case "string": return .string(value.pythonString)
        case "list": return .array(try JinjaSequence.items(value))
        case "items":
            switch value {
            case .object(let object): return .array(object.pairs.map { .array([.string($0.key), $0.value]) })
            case .undefined: return .array([])
            default: throw ChatTemplateError.runtime("Can only get item pairs from a mapping.")
            }
        case "join":
            var items = try JinjaSequence.items(value)
            if let attribute = try args.string(1, "attribute") { items = try items.map { try path($0, attribute) } }
            return .string(items.map(\.pythonString).joined(separator: try args.string(0, "d") ?? ""))
        case "replace":
            guard let old = try args.string(0, "old"), let new = try args.string(1, "new") else {
                throw ChatTemplateError.runtime("replace() needs 'old' and 'new'")
            }
            return .string(JinjaStrings.replace(value.pythonString, old, new, count: try args.int(2, "count") ?? -1))
        case "reverse":
            if case .string(let s) = value { return .string(JinjaStrings.string(s.unicodeScalars.reversed())) }
            return .array(try JinjaSequence.items(value).reversed())
        case "round":
            guard let d = value.numberValue else { throw ChatTemplateError.runtime("round() needs a number") }
            let precision = try args.int(0, "precision") ?? 0
            let method = try args.string(1, "method") ?? "common"
            let scale = pow(10.0, Double(precision))
            // "common" is Python's round(), which rounds halves to even.
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrEven
            return .double((d * scale).rounded(rule) / scale)
        case "tojson":
            let indent: String?
            switch args.value(0, "indent") {
            case .int(let n)?: indent = String(repeating: " ", count: max(0, min(n, 64)))
            case .string(let s)?: indent = s
            default: indent = nil
            }
            return .string(try value.json(indent: indent, sortKeys: args.bool(3, "sort_keys", default: false)))
        case "unique":
            var seen: [JinjaValue] = []
            for item in try JinjaSequence.items(value) where !seen.contains(where: { JinjaOperators.equal($0, item) }) {
                seen.append(item)
            }
            return .array(seen)
        case "wordcount":
            return .int(try JinjaStrings.split(value.pythonString, separator: nil, maxSplit: -1).count)
        case "indent": return .string(try indent(value.pythonString, args))
        case "sum":
            var total = args.value(1, "start") ?? .int(0)
            for item in try JinjaSequence.items(value) {
                let term = try args.string(0, "attribute").map { try path(item, $0) } ?? item
                total = try JinjaOperators.binary("+", total, term)
            }
            return total
        case "max", "min", "sort", "dictsort":
            return try ordering(name, value, args)
        case "map", "select", "reject", "selectattr", "rejectattr":
            return try selection(name, value, args)
        default:
            throw ChatTemplateError.runtime("No filter named '\(name)'.")
        }
    }

    private func escapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&#34;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    /// Jinja's `int`: truncates floats, parses strings (falling back to float syntax), else default.
    private func intFilter(_ value: JinjaValue, _ args: JinjaArgs) -> JinjaValue {
        let fallback = args.value(0, "default") ?? .int(0)
        switch value {
        case .int: return value
        case .bool(let b): return .int(b ? 1 : 0)
        case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : fallback
        case .string(let s):
            let trimmed = JinjaStrings.strip(s, chars: nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
            let base = (try? args.int(1, "base")) ?? 10
            if (2...36).contains(base), let i = Int(trimmed, radix: base) { return .int(i) }
            if let d = Double(trimmed), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
            return fallback
        default: return fallback
        }
    }

    /// A dotted attribute path such as `function.name`, or an integer index segment.
    func path(_ value: JinjaValue, _ dotted: String) throws -> JinjaValue {
        var current = value
        for part in dotted.split(separator: ".", omittingEmptySubsequences: false) {
            if let index = Int(part) {
                current = try item(of: current, .int(index), describe: .literal(current))
            } else {
                current = try item(of: current, .string(String(part)), describe: .literal(current))
            }
        }
        return current
    }

    private func indent(_ text: String, _ args: JinjaArgs) throws -> String {
        let width: String
        switch args.value(0, "width") {
        case .string(let s)?: width = s
        case let v?: width = String(repeating: " ", count: max(0, min(v.intValue ?? 4, 256)))
        case nil: width = "    "
        }
        let first = args.bool(1, "first", default: false)
        let blank = args.bool(2, "blank", default: false)
        var lines = text.components(separatedBy: "\n")
        // Jinja indents the first line only with `first`, and skips empty lines unless `blank`.
        for i in lines.indices where i == 0 ? first : (blank || !lines[i].isEmpty) {
            lines[i] = width + lines[i]
        }
        return lines.joined(separator: "\n")
    }
}

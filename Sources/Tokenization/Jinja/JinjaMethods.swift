/// Python methods that templates call on strings, dicts and lists (`content.strip()`,
/// `message.get('x')`, `d.items()`). Mutating list methods are absent, as in transformers'
/// immutable sandbox.
enum JinjaMethods {
    /// The method's result, or nil when `name` is not a method of the receiver's type.
    static func call(_ name: String, on receiver: JinjaValue, _ positional: [JinjaValue],
                     _ keyword: [(String, JinjaValue)]) throws -> JinjaValue? {
        let args = JinjaArgs(positional: positional, keyword: keyword, function: name)
        switch receiver {
        case .string(let s): return try stringMethod(name, s, args)
        case .object(let object):
            switch name {
            case "items": return .array(object.pairs.map { .array([.string($0.key), $0.value]) })
            case "keys": return .array(object.keys.map { .string($0) })
            case "values": return .array(object.pairs.map(\.value))
            case "get":
                guard case .string(let key)? = args.value(0, "key") else { return args.value(1, "default") ?? JinjaValue.none }
                return object[key] ?? args.value(1, "default") ?? JinjaValue.none
            default: return nil
            }
        case .array(let array):
            switch name {
            case "index":
                let target = try args.required(0, "value")
                guard let i = array.firstIndex(where: { JinjaOperators.equal($0, target) }) else {
                    throw ChatTemplateError.runtime("\(target.pythonRepr) is not in list")
                }
                return .int(i)
            case "count":
                let target = try args.required(0, "value")
                return .int(array.filter { JinjaOperators.equal($0, target) }.count)
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func stringMethod(_ name: String, _ s: String, _ args: JinjaArgs) throws -> JinjaValue? {
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try args.string(0, "chars")
            return .string(JinjaStrings.strip(s, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(JinjaStrings.pythonTitle(s))
        case "capitalize": return .string(JinjaStrings.capitalize(s))
        case "split":
            let parts = try JinjaStrings.split(s, separator: try args.string(0, "sep"), maxSplit: try args.int(1, "maxsplit") ?? -1)
            return .array(parts.map { .string($0) })
        case "startswith", "endswith":
            let candidates: [JinjaValue]
            switch try args.required(0, "prefix") {
            case .array(let list): candidates = list
            case let single: candidates = [single]
            }
            let scalars = Array(s.unicodeScalars)
            for candidate in candidates {
                guard case .string(let affix) = candidate else {
                    throw ChatTemplateError.runtime("\(name) first arg must be str or a tuple of str, not \(candidate.typeName)")
                }
                let a = Array(affix.unicodeScalars)
                if a.count <= scalars.count,
                   name == "startswith" ? scalars.prefix(a.count).elementsEqual(a) : scalars.suffix(a.count).elementsEqual(a)
                {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "replace":
            guard let old = try args.string(0, "old"), let new = try args.string(1, "new") else {
                throw ChatTemplateError.runtime("replace() needs 'old' and 'new'")
            }
            return .string(JinjaStrings.replace(s, old, new, count: try args.int(2, "count") ?? -1))
        case "find":
            return .int(JinjaStrings.find(try args.string(0, "sub") ?? "", in: s) ?? -1)
        case "count":
            let sub = try args.string(0, "sub") ?? ""
            return .int(JinjaStrings.split(s, separator: sub.isEmpty ? nil : sub, maxSplit: -1, countOnly: true))
        case "join":
            let items = try JinjaSequence.items(try args.required(0, "iterable"))
            return .string(try items.map { item -> String in
                guard case .string(let text) = item else {
                    throw ChatTemplateError.runtime("sequence item: expected str instance, \(item.typeName) found")
                }
                return text
            }.joined(separator: s))
        case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPythonSpace))
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        default: return nil
        }
    }
}

extension JinjaStrings {
    /// Number of non-overlapping occurrences of `separator` (`str.count`); with nil, the count
    /// of positions an empty string matches (length + 1), as in Python.
    static func split(_ s: String, separator: String?, maxSplit: Int, countOnly: Bool) -> Int {
        guard let separator else { return s.unicodeScalars.count + 1 }
        return ((try? split(s, separator: separator, maxSplit: maxSplit)) ?? [s]).count - 1
    }
}

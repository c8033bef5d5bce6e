import Foundation

/// A text normalizer from the `normalizer` key of tokenizer.json.
enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replaceString(pattern: String, content: String)
    case replaceRegex(SharedRegex, content: String)
    case strip(left: Bool, right: Bool)
    case sequence([Normalizer])

    /// Reads a normalizer; `nil` when the key is null.
    static func parse(_ node: JSONNode) throws -> Normalizer? {
        if node.isNull { return nil }
        let type = try node["type"].string()
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try node["prepend"].string())
        case "Replace":
            let content = try node["content"].string()
            switch try Pattern.parse(node["pattern"]) {
            case .string(let text): return .replaceString(pattern: text, content: content)
            case .regex(let regex): return .replaceRegex(regex, content: content)
            }
        case "Strip":
            return .strip(left: try node["strip_left"].bool(default: false), right: try node["strip_right"].bool(default: false))
        case "Sequence":
            return .sequence(try node["normalizers"].array().compactMap { try parse($0) })
        default:
            throw node["type"].unsupported(type)
        }
    }

    /// Normalizes one piece of text.
    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase:
            // Scalar by scalar like Rust's `char::to_lowercase`: no context rules (final sigma).
            var view = String.UnicodeScalarView()
            for scalar in text.unicodeScalars { view.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars) }
            return String(view)
        case .prepend(let prefix): return text.isEmpty ? text : prefix + text
        case let .replaceString(pattern, content): return text.replacingBytes(pattern, with: content)
        case let .replaceRegex(regex, content): return regex.replace(in: text, with: content)
        case let .strip(left, right):
            var scalars = Substring(text).unicodeScalars[...]
            if left { while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .sequence(let steps): return steps.reduce(text) { $1.apply($0) }
        }
    }
}

/// The `pattern` object of Split / Replace: `{"String": "…"}` or `{"Regex": "…"}`.
enum Pattern {
    case string(String)
    case regex(SharedRegex)

    static func parse(_ node: JSONNode) throws -> Pattern {
        if !node["String"].isNull { return .string(try node["String"].string()) }
        if !node["Regex"].isNull {
            let source = try node["Regex"].string()
            do { return .regex(try SharedRegex(pattern: source)) } catch {
                throw node["Regex"].invalid("the regular expression does not compile")
            }
        }
        if node.isNull { throw node.missing() }
        throw node.invalid("expected an object with a 'String' or 'Regex' key")
    }

    /// The pattern as a regex (a literal string is escaped).
    func asRegex(_ node: JSONNode) throws -> SharedRegex {
        switch self {
        case .regex(let regex): return regex
        case .string(let text):
            do { return try SharedRegex(pattern: NSRegularExpression.escapedPattern(for: text)) } catch {
                throw node.invalid("the pattern cannot be escaped")
            }
        }
    }
}

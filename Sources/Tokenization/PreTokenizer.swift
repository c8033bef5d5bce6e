import Foundation

/// Where Metaspace puts the replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    case first, always, never
}

/// A pre-tokenizer from the `pre_tokenizer` key: splits normalized text into words for the model.
enum PreTokenizer: Sendable {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SharedRegex, behavior: SplitBehavior, invert: Bool)
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case sequence([PreTokenizer])

    /// GPT-2's word pattern, used by ByteLevel when `use_regex` is true.
    static let gpt2Regex = try! SharedRegex(
        pattern: #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#)

    /// Reads a pre-tokenizer; `nil` when the key is null.
    static func parse(_ node: JSONNode) throws -> PreTokenizer? {
        if node.isNull { return nil }
        let type = try node["type"].string()
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try node["add_prefix_space"].bool(default: true),
                              useRegex: try node["use_regex"].bool(default: true))
        case "Split":
            let behaviorName = try node["behavior"].string()
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw node["behavior"].unsupported(behaviorName)
            }
            let regex = try Pattern.parse(node["pattern"]).asRegex(node["pattern"])
            return .split(regex, behavior: behavior, invert: try node["invert"].bool(default: false))
        case "Metaspace":
            return .metaspace(replacement: try replacementScalar(node["replacement"]),
                              scheme: try prependScheme(node), split: try node["split"].bool(default: true))
        case "Sequence":
            return .sequence(try node["pretokenizers"].array().compactMap { try parse($0) })
        case "WhitespaceSplit":
            return .split(try! SharedRegex(pattern: #"\p{White_Space}+"#), behavior: .removed, invert: false)
        case "Whitespace":
            return .split(try! SharedRegex(pattern: #"\w+|[^\w\s]+"#), behavior: .removed, invert: true)
        case "Digits":
            let individual = try node["individual_digits"].bool(default: false)
            return .split(try! SharedRegex(pattern: #"\p{N}"#), behavior: individual ? .isolated : .contiguous, invert: false)
        default:
            throw node["type"].unsupported(type)
        }
    }

    static func replacementScalar(_ node: JSONNode) throws -> Unicode.Scalar {
        let text = try node.string()
        guard text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first else {
            throw node.invalid("must be exactly one character")
        }
        return scalar
    }

    /// Reads `prepend_scheme`, or the older boolean `add_prefix_space`.
    static func prependScheme(_ node: JSONNode) throws -> PrependScheme {
        if let name = try node["prepend_scheme"].optionalString() {
            guard let scheme = PrependScheme(rawValue: name) else { throw node["prepend_scheme"].unsupported(name) }
            return scheme
        }
        return try node["add_prefix_space"].bool(default: true) ? .always : .never
    }

    /// Splits every piece further.
    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        case let .byteLevel(addPrefixSpace, useRegex):
            return pieces.flatMap { piece -> [Piece] in
                var piece = piece
                if addPrefixSpace, !piece.text.startsWithScalar(" ") { piece.text = " " + piece.text }
                let words = useRegex ? Self.gpt2Regex.split(piece, behavior: .isolated, invert: false) : [piece]
                return words.map { Piece(text: ByteLevelTable.encode($0.text), atStart: $0.atStart) }
            }
        case let .split(regex, behavior, invert):
            return pieces.flatMap { regex.split($0, behavior: behavior, invert: invert) }
        case let .metaspace(replacement, scheme, split):
            let replacementText = String(Character(replacement))
            return pieces.flatMap { piece -> [Piece] in
                var piece = piece
                piece.text = piece.text.replacingBytes(" ", with: replacementText)
                let prepend: Bool
                switch scheme {
                case .always: prepend = true
                case .first: prepend = piece.atStart
                case .never: prepend = false
                }
                if prepend, !piece.text.startsWithScalar(replacement) { piece.text = replacementText + piece.text }
                return split ? splitOnScalar(piece, replacement, behavior: .mergedWithNext) : [piece]
            }
        }
    }
}

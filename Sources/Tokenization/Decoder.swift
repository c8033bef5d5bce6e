/// A decoder from the `decoder` key: turns token strings back into text. Each step maps a list
/// of token strings to a new list, as in the Rust `decode_chain`; the results are joined at the end.
enum Decoder: Sendable {
    case byteLevel
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(pattern: String, content: String)
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme)
    case sequence([Decoder])

    /// Reads a decoder; `nil` when the key is null.
    static func parse(_ node: JSONNode) throws -> Decoder? {
        if node.isNull { return nil }
        let type = try node["type"].string()
        switch type {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let content = try PreTokenizer.replacementScalar(node["content"])
            let start = try node["start"].int(), stop = try node["stop"].int()
            guard start >= 0, stop >= 0 else { throw node.invalid("start and stop must not be negative") }
            return .strip(content: content, start: start, stop: stop)
        case "Replace":
            guard case .string(let pattern) = try Pattern.parse(node["pattern"]) else {
                throw node["pattern"].unsupported("Regex")
            }
            return .replace(pattern: pattern, content: try node["content"].string())
        case "Metaspace":
            return .metaspace(replacement: try PreTokenizer.replacementScalar(node["replacement"]),
                              scheme: try PreTokenizer.prependScheme(node))
        case "Sequence":
            return .sequence(try node["decoders"].array().compactMap { try parse($0) })
        default:
            throw node["type"].unsupported(type)
        }
    }

    /// Decodes the token strings to text.
    func decode(_ tokens: [String]) -> String { chain(tokens).joined() }

    /// One step of the chain.
    func chain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.chain($0) }
        case .fuse:
            return [tokens.joined()]
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { bytes.append(contentsOf: ByteLevelTable.decode(token) ?? Array(token.utf8)) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .byteFallback:
            return Self.byteFallback(tokens)
        case let .replace(pattern, content):
            return tokens.map { $0.replacingBytes(pattern, with: content) }
        case let .strip(content, start, stop):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var from = 0
                while from < min(start, scalars.count), scalars[from] == content { from += 1 }
                var to = scalars.count
                while scalars.count - to < stop, to > from, scalars[to - 1] == content { to -= 1 }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[from..<to])
                return String(view)
            }
        case let .metaspace(replacement, scheme):
            return tokens.enumerated().map { index, token in
                var view = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        // The first token's replacement stood for the prepended space: drop it.
                        if index == 0 && scheme != .never { continue }
                        view.append(" ")
                    } else {
                        view.append(scalar)
                    }
                }
                return String(view)
            }
        }
    }

    /// Groups runs of `<0xNN>` tokens into text; an invalid run becomes one U+FFFD per byte.
    private static func byteFallback(_ tokens: [String]) -> [String] {
        var output: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            // Valid UTF-8 survives a lossy decode unchanged. (Foundation's String(bytes:encoding:)
            // would also drop a leading BOM, which Rust keeps.)
            let text = String(decoding: pending, as: UTF8.self)
            if text.utf8.elementsEqual(pending) {
                output.append(text)
            } else {
                output.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for token in tokens {
            if let byte = byteValue(token) {
                pending.append(byte)
            } else {
                flush()
                output.append(token)
            }
        }
        flush()
        return output
    }

    private static func byteValue(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == 0x3C, utf8[1] == 0x30, utf8[2] == 0x78, utf8[5] == 0x3E else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }
}

import LLMuxCore

/// The `post_processor` key, reduced to what matters for single-sequence ids: the tokens placed
/// before and after the encoded text when special tokens are requested.
struct PostProcessor: Sendable {
    var prefix: [TokenID] = []
    var suffix: [TokenID] = []

    /// Reads the processor; a null key adds nothing.
    init(_ node: JSONNode) throws {
        try add(node)
    }

    private mutating func add(_ node: JSONNode) throws {
        if node.isNull { return }
        let type = try node["type"].string()
        switch type {
        case "ByteLevel":
            break  // Only adjusts offsets.
        case "Sequence":
            for step in try node["processors"].array() { try add(step) }
        case "TemplateProcessing":
            try addTemplate(node)
        case "BertProcessing", "RobertaProcessing":
            // Both wrap a single sequence as `cls A sep`, each given as [token, id].
            prefix.insert(try Self.tokenPairID(node["cls"]), at: 0)
            suffix.append(try Self.tokenPairID(node["sep"]))
        default:
            throw node["type"].unsupported(type)
        }
    }

    private static func tokenPairID(_ node: JSONNode) throws -> TokenID {
        let pair = try node.array()
        guard pair.count == 2 else { throw node.invalid("expected [token, id]") }
        return TokenID(try pair[1].int())
    }

    private mutating func addTemplate(_ node: JSONNode) throws {
        var table: [String: [TokenID]] = [:]
        for (name, spec) in try node["special_tokens"].members() {
            table[name] = try spec["ids"].array().map { TokenID(try $0.int()) }
        }
        var before: [TokenID] = [], after: [TokenID] = []
        var seenSequence = false
        for item in try node["single"].array() {
            if !item["Sequence"].isNull {
                guard try item["Sequence"]["id"].string() == "A" else {
                    throw item["Sequence"]["id"].invalid("the single template may only use sequence A")
                }
                seenSequence = true
            } else if !item["SpecialToken"].isNull {
                let name = try item["SpecialToken"]["id"].string()
                guard let ids = table[name] else {
                    throw node["special_tokens"].invalid("no entry for template token '\(name)'")
                }
                if seenSequence { after += ids } else { before += ids }
            } else {
                throw item.invalid("expected a 'Sequence' or 'SpecialToken' item")
            }
        }
        // A later processor in a Sequence wraps what the earlier ones produced.
        prefix = before + prefix
        suffix += after
    }

    /// Wraps encoded text.
    func apply(_ ids: [TokenID]) -> [TokenID] {
        prefix.isEmpty && suffix.isEmpty ? ids : prefix + ids + suffix
    }
}

import Foundation
import LLMuxCore

/// The small byte-level BPE tokenizer that make-model writes next to its random weights, so a
/// made checkpoint is complete (any text encodes, any ids decode) without shipping a real vocab.
///
/// Ids: 0…255 are the bytes (GPT-2's bytes-to-unicode alphabet), then one id per merge, then the
/// special tokens, so the whole vocabulary is small enough for the tiny presets' 512 rows.
public enum MiniTokenizer {
    /// Merges of frequent English pairs, in rank order (`Ġ` is the byte-level space).
    static let merges: [(String, String)] = [
        ("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġt", "he"), ("r", "e"),
        ("Ġ", "s"), ("Ġ", "w"), ("o", "u"), ("a", "n"), ("Ġ", "o"), ("e", "n"), ("i", "s"), ("Ġ", "h"),
        ("Ġ", "b"), ("Ġ", "c"), ("o", "r"), ("in", "g"), ("e", "d"), ("a", "t"), ("Ġ", "m"), ("Ġ", "f"),
        ("n", "d"), ("Ġ", "d"), ("Ġ", "p"), ("l", "l"), ("Ġo", "f"), ("Ġa", "nd"), ("Ġt", "o"), ("Ġ", "in"),
    ]
    /// Special tokens, in id order after the merges.
    public static let specialTokens = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
    /// Id of `<|begin_of_text|>`.
    public static var bosTokenID: TokenID { TokenID(256 + merges.count) }
    /// Id of `<|end_of_text|>`.
    public static var eosTokenID: TokenID { bosTokenID + 1 }
    /// Id of `<|im_end|>`, which ends a chat turn.
    public static var imEndTokenID: TokenID { bosTokenID + 3 }
    /// Number of ids the tokenizer uses; a model's vocab_size must be at least this.
    public static var size: Int { 256 + merges.count + specialTokens.count }

    /// GPT-2's printable stand-in for each byte, so byte-level tokens are valid JSON strings.
    static let byteTokens: [String] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var symbols = printable
        var extra = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            symbols.append(256 + extra)
            extra += 1
        }
        var tokens = [String](repeating: "", count: 256)
        for (byte, symbol) in zip(printable, symbols) {
            tokens[byte] = String(Character(Unicode.Scalar(UInt32(symbol))!))
        }
        return tokens
    }()

    /// A simple ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`), after the BOS.
    static let chatTemplate = "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `directory`.
    public static func write(to directory: URL, modelMaxLength: Int) throws {
        try tokenizerJSON().write(to: directory.appendingPathComponent("tokenizer.json"))
        try tokenizerConfigJSON(modelMaxLength: modelMaxLength).write(to: directory.appendingPathComponent("tokenizer_config.json"))
    }

    /// The `tokenizers` library's serialisation of the tokenizer.
    static func tokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (id, token) in byteTokens.enumerated() { vocab[token] = id }
        for (rank, (left, right)) in merges.enumerated() { vocab[left + right] = 256 + rank }
        let bos = specialTokens[0]
        let added: [[String: Any]] = specialTokens.enumerated().map { index, content in
            ["id": Int(bosTokenID) + index, "content": content, "single_word": false, "lstrip": false,
             "rstrip": false, "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let bosPiece: [String: Any] = ["SpecialToken": ["id": bos, "type_id": 0]]
        let object: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": byteLevel,
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [bosPiece, ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [bosPiece, ["Sequence": ["id": "A", "type_id": 0]], bosPiece, ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [bos: ["id": bos, "ids": [Int(bosTokenID)], "tokens": [bos]]],
            ] as [String: Any],
            "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges.map { "\($0.0) \($0.1)" },
            ] as [String: Any],
        ]
        return try prettyJSON(object)
    }

    /// `tokenizer_config.json`: special tokens and the chat template, as transformers reads them.
    static func tokenizerConfigJSON(modelMaxLength: Int) throws -> Data {
        var decoder: [String: Any] = [:]
        for (index, content) in specialTokens.enumerated() {
            decoder[String(Int(bosTokenID) + index)] = [
                "content": content, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true,
            ] as [String: Any]
        }
        let object: [String: Any] = [
            "added_tokens_decoder": decoder,
            "bos_token": specialTokens[0],
            "eos_token": specialTokens[1],
            "chat_template": chatTemplate,
            "clean_up_tokenization_spaces": false,
            "model_max_length": modelMaxLength,
            "tokenizer_class": "PreTrainedTokenizerFast",
        ]
        return try prettyJSON(object)
    }
}

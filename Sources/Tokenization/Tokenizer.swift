import Foundation
import LLMuxCore

/// A Hugging Face `tokenizer.json` tokenizer (BPE models: byte-level like GPT-2 / Llama 3 / Qwen2,
/// and SentencePiece-style like Llama 2 / Mistral) that encodes and decodes exactly as the Python
/// `tokenizers` library does. Immutable after loading, so it can be shared across tasks.
public final class Tokenizer: Sendable {
    private let model: BPEModel
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let decoder: Decoder?
    private let postProcessor: PostProcessor
    /// Added tokens matched in the raw text (not normalized ones, which include all specials).
    private let rawMatcher: AddedTokenMatcher
    /// Added tokens matched after normalization, by their normalized content.
    private let normalizedMatcher: AddedTokenMatcher
    private let addedByID: [TokenID: AddedToken]
    private let addedByContent: [TokenKey: TokenID]
    /// How each added token is spelled on the way out: the Rust library hands the decoder the
    /// normalized form of `normalized` tokens (e.g. "[hi]" for "[Hi]" under Lowercase).
    private let addedSpelling: [TokenID: String]
    private let modelTokens: [String?]
    private let specialContents: Set<TokenKey>
    private let config: TokenizerConfig

    /// The number of distinct tokens, added tokens included (Python's `get_vocab_size(True)`).
    public let vocabularySize: Int

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` from `directory`.
    public convenience init(directory: URL) throws {
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let tokenizerData: Data
        do { tokenizerData = try Data(contentsOf: tokenizerURL) } catch {
            throw TokenizerError.unreadableFile(file: tokenizerURL.path, reason: error.localizedDescription)
        }
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var configData: Data?
        if FileManager.default.fileExists(atPath: configURL.path) {
            do { configData = try Data(contentsOf: configURL) } catch {
                throw TokenizerError.unreadableFile(file: configURL.path, reason: error.localizedDescription)
            }
        }
        try self.init(tokenizerJSON: tokenizerData, configJSON: configData)
    }

    /// Loads from the contents of `tokenizer.json` and optionally `tokenizer_config.json`.
    public init(tokenizerJSON: Data, configJSON: Data? = nil) throws {
        let root = try JSONNode.parse(tokenizerJSON, file: "tokenizer.json")
        if root["model"].isNull { throw root["model"].missing() }
        model = try BPEModel(root["model"])
        normalizer = try Normalizer.parse(root["normalizer"])
        preTokenizer = try PreTokenizer.parse(root["pre_tokenizer"])
        decoder = try Decoder.parse(root["decoder"])
        postProcessor = try PostProcessor(root["post_processor"])

        let added = root["added_tokens"].isNull ? [] : try root["added_tokens"].array().map(AddedToken.init)
        var byID: [TokenID: AddedToken] = [:], byContent: [TokenKey: TokenID] = [:]
        var raw: [(String, AddedToken)] = [], normalized: [(String, AddedToken)] = []
        var spelling: [TokenID: String] = [:]
        for token in added {
            byID[token.id] = token
            byContent[TokenKey(token.content)] = token.id
            if token.normalized {
                let form = normalizer?.apply(token.content) ?? token.content
                normalized.append((form, token))
                spelling[token.id] = form
            } else {
                raw.append((token.content, token))
                spelling[token.id] = token.content
            }
        }
        addedSpelling = spelling
        addedByID = byID
        addedByContent = byContent
        rawMatcher = AddedTokenMatcher(raw)
        normalizedMatcher = AddedTokenMatcher(normalized)
        specialContents = Set(added.filter(\.special).map { TokenKey($0.content) })

        let maxID = model.vocab.values.max().map(Int.init) ?? -1
        var tokens = [String?](repeating: nil, count: maxID + 1)
        for (key, id) in model.vocab { tokens[Int(id)] = key.text }
        modelTokens = tokens
        vocabularySize = Set(model.vocab.keys).union(added.map { TokenKey($0.content) }).count

        config = try configJSON.map { try TokenizerConfig($0) } ?? TokenizerConfig()
    }

    /// Encodes `text`; with `addSpecialTokens` the post-processor template (e.g. BOS) is applied.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [TokenID] {
        var ids: [TokenID] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        for segment in rawMatcher.split(Piece(text: text, atStart: true)) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(var piece):
                if let normalizer { piece.text = normalizer.apply(piece.text) }
                for inner in normalizedMatcher.split(piece) {
                    switch inner {
                    case .token(let id): ids.append(id)
                    case .text(let piece):
                        for word in preTokenizer?.apply([piece]) ?? [piece] { model.tokenize(word.text, into: &ids) }
                    }
                }
            }
        }
        return addSpecialTokens ? postProcessor.apply(ids) : ids
    }

    /// Decodes `ids` to text through the configured decoder; unknown ids are skipped.
    public func decode(_ ids: [TokenID], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let text = token(for: id) else { continue }
            if skipSpecialTokens, specialContents.contains(TokenKey(text)) { continue }
            tokens.append(text)
        }
        return decoder?.decode(tokens) ?? tokens.joined(separator: " ")
    }

    /// The id of a token string (added tokens first, then the model vocabulary).
    public func tokenID(for token: String) -> TokenID? {
        let key = TokenKey(token)
        return addedByContent[key] ?? model.vocab[key]
    }

    /// The string of a token id, as stored in the vocabulary (byte-level tokens stay encoded;
    /// normalized added tokens come back normalized, as Python's `id_to_token`).
    public func token(for id: TokenID) -> String? {
        if let added = addedSpelling[id] { return added }
        guard id >= 0, Int(id) < modelTokens.count else { return nil }
        return modelTokens[Int(id)]
    }

    /// Whether `id` is an added token marked special (dropped by `skipSpecialTokens`).
    public func isSpecial(_ id: TokenID) -> Bool { addedByID[id]?.special ?? false }

    /// `bos_token` from tokenizer_config.json.
    public var bosToken: String? { config.bosToken }
    /// `eos_token` from tokenizer_config.json.
    public var eosToken: String? { config.eosToken }
    /// The id of `bosToken`, if it is in the vocabulary.
    public var bosTokenID: TokenID? { bosToken.flatMap(tokenID(for:)) }
    /// The id of `eosToken`, if it is in the vocabulary.
    public var eosTokenID: TokenID? { eosToken.flatMap(tokenID(for:)) }
    /// `chat_template` from tokenizer_config.json when it is a single string.
    public var chatTemplate: String? { config.chatTemplate }

    /// A streaming decoder for generated tokens.
    public func makeDetokenizer(skipSpecialTokens: Bool = true) -> IncrementalDetokenizer {
        IncrementalDetokenizer(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// The parts of tokenizer_config.json the server uses.
struct TokenizerConfig: Sendable {
    var bosToken: String?
    var eosToken: String?
    var chatTemplate: String?

    init() {}

    init(_ data: Data) throws {
        let root = try JSONNode.parse(data, file: "tokenizer_config.json")
        bosToken = try Self.tokenName(root["bos_token"])
        eosToken = try Self.tokenName(root["eos_token"])
        chatTemplate = root["chat_template"].value as? String
    }

    /// A token given as a string or as an AddedToken object `{"content": …}`.
    private static func tokenName(_ node: JSONNode) throws -> String? {
        if node.isNull { return nil }
        if let name = node.value as? String { return name }
        if node.value is [String: Any] { return try node["content"].string() }
        throw node.wrongType("a string or an object with 'content'")
    }
}

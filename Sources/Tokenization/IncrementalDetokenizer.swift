import LLMuxCore

/// Turns a stream of generated token ids into text pieces without ever emitting half a character.
///
/// It follows vLLM: keep a window of ids from `prefixOffset`, decode it with and without the
/// newest tokens, and emit the difference once it no longer ends in U+FFFD (which is how an
/// incomplete UTF-8 sequence decodes). Decoding a window rather than one token at a time keeps
/// decoder context (stripped leading spaces, byte groups) identical to a full decode.
public struct IncrementalDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var ids: [TokenID] = []
    /// Start of the window re-decoded for context.
    private var prefixOffset = 0
    /// End of the text already emitted.
    private var readOffset = 0

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one token and returns the newly completed text (often "", never a partial character).
    public mutating func append(_ id: TokenID) -> String {
        ids.append(id)
        let (prefix, full) = decodeWindow()
        guard full.count > prefix.count, full.last != "\u{FFFD}" else { return "" }
        prefixOffset = readOffset
        readOffset = ids.count
        return Self.suffix(of: full, after: prefix.count)
    }

    /// Returns whatever is still buffered (ending in U+FFFD if the stream ended inside a
    /// character, exactly as a full decode would). Call once, when the stream is over: a token
    /// appended afterwards starts a new window, and decoders that strip a leading space would
    /// treat it as the start of a text.
    public mutating func finish() -> String {
        let (prefix, full) = decodeWindow()
        let rest = full.count > prefix.count ? Self.suffix(of: full, after: prefix.count) : ""
        prefixOffset = ids.count
        readOffset = ids.count
        return rest
    }

    /// Scalars of the already-emitted window part, and of the whole window.
    private func decodeWindow() -> (prefix: [Unicode.Scalar], full: [Unicode.Scalar]) {
        let prefix = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let full = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        // Compare scalars, not Characters: a new scalar may join the previous grapheme (ZWJ, skin tone).
        return (Array(prefix.unicodeScalars), Array(full.unicodeScalars))
    }

    private static func suffix(of scalars: [Unicode.Scalar], after count: Int) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[count...])
        return String(view)
    }
}

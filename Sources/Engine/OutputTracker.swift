import LLMuxCore
import Tokenization

/// Turns a sequence's tokens into streamed text and decides when it stops: stop tokens, EOS,
/// length, and stop strings. Text that might be the start of a stop string is held back until it
/// is known not to be one, so a stop string never reaches the client (as in vLLM).
struct OutputTracker {
    /// Nil when the model has no tokenizer (token ids only, as in tests).
    private var detokenizer: IncrementalDetokenizer?
    private let parameters: SamplingParameters
    private let eosTokenIDs: Set<TokenID>
    private let contextLength: Int
    private let promptLength: Int
    /// Text decoded so far.
    private(set) var text = ""
    /// Characters of `text` already emitted.
    private var emittedCount = 0
    /// Longest stop string, in characters.
    private let holdBack: Int

    init(detokenizer: IncrementalDetokenizer?, parameters: SamplingParameters, eosTokenIDs: [TokenID],
         contextLength: Int, promptLength: Int) {
        self.detokenizer = detokenizer
        self.parameters = parameters
        self.eosTokenIDs = Set(eosTokenIDs)
        self.contextLength = contextLength
        self.promptLength = promptLength
        self.holdBack = parameters.stopStrings.map(\.count).max() ?? 0
    }

    /// Takes the `outputCount`-th generated token; returns the final text delta and the finish
    /// reason when the sequence ends with it.
    mutating func append(_ token: TokenID, outputCount: Int) -> (delta: String, finish: FinishReason?) {
        let isStopToken = parameters.stopTokenIDs.contains(token) || (parameters.stopAtEOS && eosTokenIDs.contains(token))
        if !isStopToken {
            text += detokenizer?.append(token) ?? ""
        }
        if isStopToken { return (flush(), .stop) }
        if !parameters.stopStrings.isEmpty, let cut = earliestStop() {
            text = String(text.prefix(cut))
            return (emitUpTo(text.count), .stop)
        }
        if outputCount >= parameters.maxTokens || promptLength + outputCount >= contextLength {
            return (flush(), .length)
        }
        return (emitUpTo(text.count - holdBack), nil)
    }

    /// Emits everything left (called when the sequence ends for another reason).
    mutating func flush() -> String {
        text += detokenizer?.finish() ?? ""
        return emitUpTo(text.count)
    }

    /// Character offset where the first stop string begins, searching only text not yet emitted
    /// plus the held-back tail.
    private func earliestStop() -> Int? {
        let searchFrom = max(0, emittedCount - holdBack)
        let tail = text.dropFirst(searchFrom)
        var best: Int?
        for stop in parameters.stopStrings where !stop.isEmpty {
            if let range = tail.range(of: stop) {
                let offset = searchFrom + tail.distance(from: tail.startIndex, to: range.lowerBound)
                best = min(best ?? offset, offset)
            }
        }
        return best
    }

    private mutating func emitUpTo(_ end: Int) -> String {
        guard end > emittedCount else { return "" }
        let start = text.index(text.startIndex, offsetBy: emittedCount)
        let stop = text.index(text.startIndex, offsetBy: end)
        emittedCount = end
        return String(text[start..<stop])
    }
}

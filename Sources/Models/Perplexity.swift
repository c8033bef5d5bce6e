import Foundation
import LLMuxCore

/// Perplexity of a model on a token sequence, defined as scripts/train/train_demo_model.py
/// defines it: the ids are cut into consecutive windows of `context` tokens (the last one may be
/// shorter; one of a single token is dropped), every token after the first of a window is scored
/// given the tokens before it in that window, and the perplexity is exp(mean NLL) over them all.
public struct PerplexityResult: Sendable, Equatable {
    /// Mean negative log-likelihood (nats) of the scored tokens.
    public var meanNLL: Double
    /// exp(meanNLL).
    public var perplexity: Double { exp(meanNLL) }
    /// How many tokens were scored.
    public var scoredTokens: Int
    /// How many windows were run.
    public var windows: Int
    /// The window length.
    public var context: Int

    /// Evaluates `model` of `runner` on `tokens`; `progress` is called after each window with the
    /// windows done and the total. The runner's KV pool must hold `context` tokens and no sequence.
    public static func evaluate(runner: ModelRunner, model: ModelID, tokens: [TokenID], context: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        precondition(context >= 2, "a window needs at least two tokens")
        let starts = Array(stride(from: 0, to: tokens.count, by: context)).filter { tokens.count - $0 >= 2 }
        var total = 0.0
        var scored = 0
        for (index, start) in starts.enumerated() {
            let window = Array(tokens[start ..< min(start + context, tokens.count)])
            let logProbs = try runner.nextTokenLogProbs(model: model, tokens: window)
            total -= logProbs.reduce(0, +)
            scored += logProbs.count
            progress?(index + 1, starts.count)
        }
        guard scored > 0 else { throw LLMuxError.engine("perplexity needs at least two tokens") }
        return PerplexityResult(meanNLL: total / Double(scored), scoredTokens: scored, windows: starts.count, context: context)
    }

    /// A result; `perplexity` follows from `meanNLL`.
    public init(meanNLL: Double, scoredTokens: Int, windows: Int, context: Int) {
        self.meanNLL = meanNLL
        self.scoredTokens = scoredTokens
        self.windows = windows
        self.context = context
    }
}

/// What an executor returns for one step: one sampled token per sequence that asked for one.
public struct StepResult: Sendable, Equatable {
    /// Sampled tokens, by sequence.
    public var samples: [SequenceID: SampledToken]
    /// A result.
    public init(samples: [SequenceID: SampledToken] = [:]) { self.samples = samples }
}

/// One sampled token with the log-probabilities that were asked for.
public struct SampledToken: Sendable, Equatable {
    /// The chosen token.
    public var tokenID: TokenID
    /// Log-probability of the chosen token under the model's distribution (before temperature and
    /// filtering, as vLLM reports by default).
    public var logprob: Float
    /// The most likely tokens with their log-probabilities, most likely first (`logprobs` of them).
    public var top: [TokenLogprob]
    /// A sampled token.
    public init(tokenID: TokenID, logprob: Float, top: [TokenLogprob] = []) {
        self.tokenID = tokenID
        self.logprob = logprob
        self.top = top
    }
}

/// A token and its log-probability.
public struct TokenLogprob: Sendable, Equatable, Codable {
    /// The token.
    public var tokenID: TokenID
    /// Its natural-log probability.
    public var logprob: Float
    /// A pair.
    public init(tokenID: TokenID, logprob: Float) {
        self.tokenID = tokenID
        self.logprob = logprob
    }
}

/// How to choose each next token. Field meanings follow the OpenAI and vLLM APIs.
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    public var topP: Float
    /// Keep only the K most likely tokens; 0 or less disables it.
    public var topK: Int
    /// Drop tokens whose probability is below `minP` times the top probability; 0 disables it.
    public var minP: Float
    /// A seed makes sampling reproducible: the same seed and request give the same tokens.
    public var seed: UInt64?
    /// HF-style repetition penalty (>1 discourages tokens seen in prompt or output); 1 disables it.
    public var repetitionPenalty: Float
    /// OpenAI presence penalty, applied once to every token already generated.
    public var presencePenalty: Float
    /// OpenAI frequency penalty, applied per occurrence of a generated token.
    public var frequencyPenalty: Float
    /// Number of most likely tokens whose log-probabilities are returned per step (0: only the chosen one's).
    public var logprobs: Int?
    /// Maximum number of generated tokens.
    public var maxTokens: Int
    /// Generating any of these ends the sequence with reason `stop`.
    public var stopTokenIDs: [TokenID]
    /// Text that ends the sequence when it appears in the output; it is not included in the text.
    public var stopStrings: [String]
    /// When false, the model's EOS tokens do not stop generation.
    public var stopAtEOS: Bool

    /// Greedy decoding of up to `maxTokens` tokens, stopping at EOS.
    public init(
        temperature: Float = 0, topP: Float = 1, topK: Int = 0, minP: Float = 0, seed: UInt64? = nil,
        repetitionPenalty: Float = 1, presencePenalty: Float = 0, frequencyPenalty: Float = 0,
        logprobs: Int? = nil, maxTokens: Int = 16, stopTokenIDs: [TokenID] = [], stopStrings: [String] = [],
        stopAtEOS: Bool = true
    ) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.minP = minP
        self.seed = seed
        self.repetitionPenalty = repetitionPenalty
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.logprobs = logprobs
        self.maxTokens = maxTokens
        self.stopTokenIDs = stopTokenIDs
        self.stopStrings = stopStrings
        self.stopAtEOS = stopAtEOS
    }

    /// True when decoding is argmax.
    public var isGreedy: Bool { temperature <= 0 }

    /// True when any penalty needs the token history.
    public var needsHistory: Bool {
        repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0
    }

    /// Checks ranges and returns a message naming the bad field, or nil when valid.
    public func validationError() -> String? {
        if !(temperature >= 0) { return "temperature must be >= 0, got \(temperature)" }
        if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1], got \(topP)" }
        if !(minP >= 0 && minP <= 1) { return "min_p must be in [0, 1], got \(minP)" }
        if !(repetitionPenalty > 0) { return "repetition_penalty must be > 0, got \(repetitionPenalty)" }
        if !(presencePenalty >= -2 && presencePenalty <= 2) { return "presence_penalty must be in [-2, 2], got \(presencePenalty)" }
        if !(frequencyPenalty >= -2 && frequencyPenalty <= 2) { return "frequency_penalty must be in [-2, 2], got \(frequencyPenalty)" }
        if let logprobs, logprobs < 0 || logprobs > 20 { return "logprobs must be in [0, 20], got \(logprobs)" }
        if maxTokens < 1 { return "max_tokens must be at least 1, got \(maxTokens)" }
        return nil
    }
}

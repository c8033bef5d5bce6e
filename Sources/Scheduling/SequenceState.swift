import LLMuxCore

/// Where a sequence is in its life.
public enum SequenceStatus: Sendable, Equatable {
    /// Queued; holds no pages.
    case waiting
    /// Admitted; holds pages for its computed tokens.
    case running
    /// Done, with the reason; its pages are released.
    case finished(FinishReason)
}

/// Everything the scheduler knows of one sequence: integers only.
public struct SequenceState: Sendable {
    /// The sequence.
    public let id: SequenceID
    /// Its model.
    public let model: ModelID
    /// Prompt token ids.
    public let promptTokens: [TokenID]
    /// Generated token ids so far.
    public internal(set) var outputTokens: [TokenID] = []
    /// Sampling settings (with a seed always filled in, so recomputation is reproducible).
    public let parameters: SamplingParameters
    /// Tokens whose keys and values are in the cache.
    public internal(set) var computedCount = 0
    /// Current status.
    public internal(set) var status: SequenceStatus = .waiting
    /// How many times the sequence was preempted (its cache dropped and recomputed).
    public internal(set) var preemptionCount = 0
    /// When it arrived, in the clock of `Scheduler.schedule(now:)`: its wait for a first token
    /// counts from here.
    public let arrivalTime: Double

    /// A waiting sequence that arrived at `arrivalTime` (seconds, the clock `schedule(now:)` gets).
    public init(id: SequenceID, model: ModelID, promptTokens: [TokenID], parameters: SamplingParameters, arrivalTime: Double = 0) {
        self.id = id
        self.model = model
        self.promptTokens = promptTokens
        self.parameters = parameters
        self.arrivalTime = arrivalTime
    }

    /// Prompt plus output.
    public var tokenCount: Int { promptTokens.count + outputTokens.count }

    /// Token at `index` of prompt-then-output.
    func token(at index: Int) -> TokenID {
        index < promptTokens.count ? promptTokens[index] : outputTokens[index - promptTokens.count]
    }

    /// Tokens still to run through the model before the next sample.
    public var pendingCount: Int { tokenCount - computedCount }

    /// True once the prompt (and any recomputed output) is cached and only decoding remains.
    public var isDecoding: Bool { pendingCount == 1 && computedCount > 0 }
}

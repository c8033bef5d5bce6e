/// One engine step: the jobs every executor runs before the loop looks at results.
///
/// The scheduler fills it with integers only (tokens, positions, page ids); tensors stay behind
/// the executor. Prefill chunks and decode tokens are the same thing here: tokens catching up
/// with their sequence.
public struct StepPlan: Sendable, Equatable {
    /// The jobs of this step, each for one model on one partition.
    public var jobs: [JobPlan]
    /// A plan of jobs.
    public init(jobs: [JobPlan]) { self.jobs = jobs }
    /// True when nothing is to run.
    public var isEmpty: Bool { jobs.allSatisfy { $0.tokenIDs.isEmpty } }
}

/// Whether a job carries prompt tokens or decode tokens (they may run on different partitions).
public enum JobPhase: String, Sendable, Equatable {
    /// Prompt tokens (possibly a chunk), possibly mixed with decode tokens on the CPU.
    case prefill
    /// One new token per sequence.
    case decode
}

/// One model's share of a step as a flat batch of tokens across sequences.
public struct JobPlan: Sendable, Equatable {
    /// The model that runs this job.
    public var model: ModelID
    /// The executor's partitioning this job runs under (an index into the partitionings the
    /// executor was configured with; 0 is the whole device).
    public var partitioning: Int
    /// The SM partition within that partitioning (0 when the device is not partitioned).
    public var partition: Int
    /// Names this job in the scheduler's books and in the executor's completion (unique while in flight).
    public var ticket: Int
    /// Prefill or decode.
    public var phase: JobPhase
    /// The job is the unit's prefill lane's (`mux`): it may run at the same time as another job of
    /// its model (that model's decode job, or its mixed job under `--mux-jobs hybrid`), so the
    /// executor gives it activation buffers of its own.
    public var onPrefillLane: Bool
    /// Flat batch of input tokens, sequence after sequence.
    public var tokenIDs: [TokenID]
    /// Absolute position of every token in its sequence.
    public var positions: [Int32]
    /// KV slot (page * tokensPerPage + offset) where each token's key and value are written.
    public var slotMapping: [Int32]
    /// The sequences, in flat-batch order.
    public var sequences: [SequencePlan]

    /// A job; `tokenIDs`, `positions` and `slotMapping` have one entry per token.
    public init(model: ModelID, partitioning: Int = 0, partition: Int = 0, ticket: Int = 0, phase: JobPhase, onPrefillLane: Bool = false,
                tokenIDs: [TokenID], positions: [Int32], slotMapping: [Int32], sequences: [SequencePlan]) {
        self.model = model
        self.partitioning = partitioning
        self.partition = partition
        self.ticket = ticket
        self.phase = phase
        self.onPrefillLane = onPrefillLane
        self.tokenIDs = tokenIDs
        self.positions = positions
        self.slotMapping = slotMapping
        self.sequences = sequences
    }
}

/// One sequence's part of a job.
public struct SequencePlan: Sendable, Equatable {
    /// The sequence.
    public var sequenceID: SequenceID
    /// Index of its first token in the job's flat batch.
    public var queryStart: Int
    /// Number of its tokens in this job.
    public var queryCount: Int
    /// Tokens in its KV cache once this job's tokens are written (attention spans all of them).
    public var contextLength: Int
    /// Pages holding its KV cache, in order.
    public var pageTable: [Int32]
    /// Present when the last token's logits must be sampled this step.
    public var sample: SampleRequest?

    /// A sequence entry.
    public init(sequenceID: SequenceID, queryStart: Int, queryCount: Int, contextLength: Int,
                pageTable: [Int32], sample: SampleRequest?) {
        self.sequenceID = sequenceID
        self.queryStart = queryStart
        self.queryCount = queryCount
        self.contextLength = contextLength
        self.pageTable = pageTable
        self.sample = sample
    }
}

/// What the executor needs to sample one token of one sequence.
public struct SampleRequest: Sendable, Equatable {
    /// Sampling parameters of the request.
    public var parameters: SamplingParameters
    /// How many tokens this sequence has generated so far; with the seed it fixes the random
    /// draw, so recomputation after preemption draws the same numbers.
    public var generatedCount: Int
    /// Prompt tokens, filled only when `parameters.needsHistory` (repetition penalty).
    public var promptTokens: [TokenID]
    /// Generated tokens so far, filled only when `parameters.needsHistory`.
    public var outputTokens: [TokenID]

    /// A sample request.
    public init(parameters: SamplingParameters, generatedCount: Int, promptTokens: [TokenID] = [],
                outputTokens: [TokenID] = []) {
        self.parameters = parameters
        self.generatedCount = generatedCount
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
    }
}

/// The shape of one model's KV cache, which is all the scheduler needs to know of a model.
public struct KVCacheShape: Sendable, Equatable {
    /// Decoder layers.
    public var layerCount: Int
    /// Key/value heads per layer.
    public var kvHeadCount: Int
    /// Size of one head.
    public var headDim: Int
    /// Bytes of one stored element (4 for fp32 on the CPU, 2 for bf16 on a GPU).
    public var bytesPerElement: Int
    /// A shape.
    public init(layerCount: Int, kvHeadCount: Int, headDim: Int, bytesPerElement: Int) {
        self.layerCount = layerCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.bytesPerElement = bytesPerElement
    }
    /// Bytes of key plus value for one token across all layers.
    public var bytesPerToken: Int { 2 * layerCount * kvHeadCount * headDim * bytesPerElement }
}

/// What the engine knows about a loaded model, as plain values.
public struct ModelDescriptor: Sendable, Equatable {
    /// Serving name.
    public var id: ModelID
    /// Maximum sequence length (prompt plus output).
    public var contextLength: Int
    /// Size of the output distribution.
    public var vocabularySize: Int
    /// Tokens that end generation by default (from `generation_config.json` or `config.json`).
    public var eosTokenIDs: [TokenID]
    /// KV cache geometry.
    public var kvShape: KVCacheShape
    /// Weights in the model (0 when unknown); the scheduler sizes SM partitions by it.
    public var parameterCount: Int
    /// A descriptor.
    public init(id: ModelID, contextLength: Int, vocabularySize: Int, eosTokenIDs: [TokenID], kvShape: KVCacheShape,
                parameterCount: Int = 0) {
        self.id = id
        self.parameterCount = parameterCount
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
        self.eosTokenIDs = eosTokenIDs
        self.kvShape = kvShape
    }
}

/// Runs step plans. The unit's engine loop is its only caller, so implementations need no locks
/// of their own; they are not shared between loops.
public protocol ModelExecutor: AnyObject {
    /// The models this executor can run.
    var models: [ModelDescriptor] { get }
    /// Tokens per KV page, by model (pages are allocated by the scheduler, stored by the executor).
    func tokensPerPage(for model: ModelID) -> Int
    /// Total pages available in the KV pool this executor stores.
    var pageCount: Int { get }
    /// Runs every job of the plan and samples the sequences that asked for it.
    func execute(_ plan: StepPlan) throws -> StepResult
}

/// An executor that queues a plan and hands its samples back later, so that the engine can plan
/// and prepare the next step on the host while the device runs this one (and turn this step's
/// samples into text while the device runs the next). One plan is queued at a time.
public protocol PipelinedExecutor: ModelExecutor {
    /// True when `begin` returns before the device has finished (a GPU); false when it computes
    /// the plan on the calling thread (the CPU), where pipelining gains nothing.
    var queuesAsynchronously: Bool { get }
    /// Queues every job of the plan, sampling included, and returns.
    func begin(_ plan: StepPlan) throws
    /// Waits for the plan queued by `begin` and returns its samples.
    func end() throws -> StepResult
}

/// An executor whose jobs run in the background, each on its own SM partition and stream, so
/// that a long prefill of one model does not hold back the decode steps of others. The engine
/// launches a plan and later collects the jobs that finished, in any order.
public protocol AsynchronousExecutor: ModelExecutor {
    /// SMs of the device (0 where it has no SM partitions).
    var multiprocessorCount: Int { get }
    /// Creates the SM partitionings that jobs name by index (`JobPlan.partitioning`), each a list
    /// of SM counts; returns the counts the device granted (rounded to its granularity). Replaces
    /// earlier partitionings; call it only while no job is in flight.
    func configurePartitions(_ partitionings: [[Int]]) throws -> [[Int]]
    /// Queues every job of the plan on its partition and returns at once. A job's failure is
    /// reported by `collect`; a throw here means none of the plan's jobs was queued.
    func launch(_ plan: StepPlan) throws
    /// Jobs that finished since the last call; with `wait`, blocks until at least one has (when
    /// any is in flight), or for at most a few milliseconds, so that the loop can take requests
    /// that arrived meanwhile (an empty answer then just means: nothing finished yet).
    func collect(wait: Bool) -> [JobCompletion]
    /// Jobs queued and not yet collected.
    var inFlightCount: Int { get }
}

/// The end of one job of an asynchronous executor.
public struct JobCompletion: Sendable {
    /// The job's ticket (`JobPlan.ticket`).
    public var ticket: Int
    /// Its sampled tokens, or why it failed.
    public var result: Result<StepResult, LLMuxError>
    /// A completion.
    public init(ticket: Int, result: Result<StepResult, LLMuxError>) {
        self.ticket = ticket
        self.result = result
    }
}

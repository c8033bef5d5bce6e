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
    /// A descriptor.
    public init(id: ModelID, contextLength: Int, vocabularySize: Int, eosTokenIDs: [TokenID], kvShape: KVCacheShape) {
        self.id = id
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

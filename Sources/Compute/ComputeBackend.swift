import LLMuxCore

/// Where one layer's keys and values live in a paged KV pool: token slot `s` of kv head `h` is
/// at `keys + (s / tokensPerPage) * pageStride + (s % tokensPerPage) * kvDim + h * headDim`.
public struct PagedKVLayer: @unchecked Sendable {
    /// First key element of page 0 for this layer.
    public let keys: UnsafeMutablePointer<Float>
    /// First value element of page 0 for this layer.
    public let values: UnsafeMutablePointer<Float>
    /// Tokens held by one page for this model.
    public let tokensPerPage: Int
    /// Elements between consecutive pages.
    public let pageStride: Int
    /// A layer view.
    public init(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, tokensPerPage: Int, pageStride: Int) {
        self.keys = keys
        self.values = values
        self.tokensPerPage = tokensPerPage
        self.pageStride = pageStride
    }
}

/// Per-step attention metadata of a flat batch, already on the device.
public struct AttentionBatch: Sendable {
    /// `sequenceCount + 1` cumulative query offsets.
    public let queryStarts: IntTensor
    /// Context length of each sequence after this step.
    public let contextLengths: IntTensor
    /// `sequenceCount × maxPages` page ids (rows padded with 0).
    public let pageTables: IntTensor
    /// Number of sequences.
    public let sequenceCount: Int
    /// Width of `pageTables`.
    public let maxPages: Int
    /// Metadata for one step.
    public init(queryStarts: IntTensor, contextLengths: IntTensor, pageTables: IntTensor, sequenceCount: Int, maxPages: Int) {
        self.queryStarts = queryStarts
        self.contextLengths = contextLengths
        self.pageTables = pageTables
        self.sequenceCount = sequenceCount
        self.maxPages = maxPages
    }
}

/// Whole-batch operations on device tensors: what a model's forward pass needs from a device.
/// Every call covers all tokens of a step, so a GPU backend launches one kernel per call and no
/// value comes back to the host until `sample`.
public protocol ComputeBackend: AnyObject {
    /// Human-readable device name (for logs and benchmark reports).
    var deviceName: String { get }
    /// A new f32 tensor of `rows × columns`, zeroed.
    func makeTensor(rows: Int, columns: Int) -> Tensor
    /// A weight tensor over stored bytes (f32, f16 or bf16). The CPU borrows the memory.
    func makeWeight(address: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, owner: AnyObject?) -> Tensor
    /// Copies integers to the device.
    func upload(_ values: [Int32]) -> IntTensor
    /// `out[t] = table[ids[t]]`.
    func embedding(ids: IntTensor, table: Tensor, out: Tensor)
    /// `out = x · weightᵀ (+ bias)`; weight is `[out features, in features]`.
    func matmul(_ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor)
    /// RMSNorm of each row.
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor)
    /// `residual += x`, then `out = rmsNorm(residual)`.
    func addRMSNorm(residual: Tensor, _ x: Tensor, weight: Tensor, eps: Float, out: Tensor)
    /// Rotary embedding in place on `heads` heads of each row.
    func rope(_ x: Tensor, positions: IntTensor, heads: Int, headDim: Int, inverseFrequencies: Tensor)
    /// `out = silu(gate) * up`, where each row of `gateUp` is gate then up.
    func siluMul(gateUp: Tensor, out: Tensor)
    /// Stores this step's keys and values at their slots.
    func writeKV(keys: Tensor, values: Tensor, layer: PagedKVLayer, slots: IntTensor, kvHeads: Int, headDim: Int)
    /// Causal attention of every query over its sequence's pages.
    func pagedAttention(queries: Tensor, layer: PagedKVLayer, batch: AttentionBatch, heads: Int, kvHeads: Int,
                        headDim: Int, scale: Float, out: Tensor)
    /// Copies the given rows of `x` into consecutive rows of `out`.
    func gatherRows(_ x: Tensor, rows: [Int], out: Tensor)
    /// Samples one token per row of `logits` (row i for `requests[i]`).
    func sample(logits: Tensor, requests: [SampleRequest]) -> [SampledToken]
}

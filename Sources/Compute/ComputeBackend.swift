import LLMuxCore

/// Where one layer's keys and values live in a paged KV pool: token slot `s` of kv head `h` is
/// at element `(s / tokensPerPage) * pageStride + (s % tokensPerPage) * kvDim + h * headDim` from
/// `keys`. The addresses are the backend's (host memory on the CPU, device addresses on a GPU).
public struct PagedKVLayer: @unchecked Sendable {
    /// First key element of page 0 for this layer.
    public let keys: UnsafeMutableRawPointer
    /// First value element of page 0 for this layer.
    public let values: UnsafeMutableRawPointer
    /// Element type of the pool (the backend's `kvCacheDType`).
    public let dtype: DType
    /// Tokens held by one page for this model.
    public let tokensPerPage: Int
    /// Elements between consecutive pages.
    public let pageStride: Int
    /// A layer view.
    public init(keys: UnsafeMutableRawPointer, values: UnsafeMutableRawPointer, dtype: DType, tokensPerPage: Int, pageStride: Int) {
        self.keys = keys
        self.values = values
        self.dtype = dtype
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
    /// Most query tokens of one sequence (1 for a pure decode batch); 0 when unknown.
    public let maxQueryCount: Int
    /// Longest context of the batch; 0 when unknown.
    public let maxContextLength: Int
    /// Flat-batch rows of the sequences with a single query token, in a step that also has prompt
    /// chunks (a GPU runs them with its decode kernel); nil when not built.
    public let decodeTokenRows: IntTensor?
    /// Metadata for one step.
    public init(queryStarts: IntTensor, contextLengths: IntTensor, pageTables: IntTensor, sequenceCount: Int, maxPages: Int,
                maxQueryCount: Int = 0, maxContextLength: Int = 0, decodeTokenRows: IntTensor? = nil) {
        self.queryStarts = queryStarts
        self.contextLengths = contextLengths
        self.pageTables = pageTables
        self.sequenceCount = sequenceCount
        self.maxPages = maxPages
        self.maxQueryCount = maxQueryCount
        self.maxContextLength = maxContextLength
        self.decodeTokenRows = decodeTokenRows
    }
}

/// Whole-batch operations on device tensors: what a model's forward pass needs from a device.
/// Every call covers all tokens of a step, so a GPU backend launches one kernel per call and no
/// value comes back to the host until `sample`. Every call can fail (a GPU reports out of memory
/// or a failed launch as an error, never a crash).
public protocol ComputeBackend: AnyObject {
    /// Human-readable device name (for logs and benchmark reports).
    var deviceName: String { get }
    /// Element type of the activations the backend computes in (f32 on the CPU, bf16 on CUDA).
    var activationDType: DType { get }
    /// Element type of the KV cache.
    var kvCacheDType: DType { get }
    /// Bytes of device memory still free (nil on the host, where the caller sizes the pool).
    func freeMemoryBytes() throws -> Int?
    /// A new tensor of `rows × columns`, zeroed; `dtype` is f32 or the activation type.
    func makeTensor(rows: Int, columns: Int, dtype: DType) throws -> Tensor
    /// A weight tensor over stored bytes (f32, f16 or bf16). The CPU borrows the memory; a GPU
    /// copies it to the device (in the backend's weight type).
    func makeWeight(address: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, owner: AnyObject?) throws -> Tensor
    /// Copies integers to the device.
    func upload(_ values: [Int32]) throws -> IntTensor
    /// Copies floats to a new f32 `1 × n` tensor on the device.
    func upload(floats values: [Float]) throws -> Tensor
    /// `out[t] = table[ids[t]]`.
    func embedding(ids: IntTensor, table: Tensor, out: Tensor) throws
    /// `out = x · weightᵀ (+ bias)`; weight is `[out features, in features]`.
    func matmul(_ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor) throws
    /// RMSNorm of each row.
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) throws
    /// `residual += x`, then `out = rmsNorm(residual)`.
    func addRMSNorm(residual: Tensor, _ x: Tensor, weight: Tensor, eps: Float, out: Tensor) throws
    /// Rotary embedding in place on `heads` heads of each row.
    func rope(_ x: Tensor, positions: IntTensor, heads: Int, headDim: Int, inverseFrequencies: Tensor) throws
    /// `out = silu(gate) * up`, where each row of `gateUp` is gate then up.
    func siluMul(gateUp: Tensor, out: Tensor) throws
    /// Stores this step's keys and values at their slots.
    func writeKV(keys: Tensor, values: Tensor, layer: PagedKVLayer, slots: IntTensor, kvHeads: Int, headDim: Int) throws
    /// Rotary embedding of the query and key heads of each row of `qkv` (queries, keys, values side
    /// by side), then this step's keys and values stored at their slots: `rope` and `writeKV` in one
    /// pass where the backend fuses them.
    func ropeWriteKV(qkv: Tensor, queryHeads: Int, kvHeads: Int, headDim: Int, positions: IntTensor, inverseFrequencies: Tensor,
                     layer: PagedKVLayer, slots: IntTensor) throws
    /// Causal attention of every query over its sequence's pages.
    func pagedAttention(queries: Tensor, layer: PagedKVLayer, batch: AttentionBatch, heads: Int, kvHeads: Int,
                        headDim: Int, scale: Float, out: Tensor) throws
    /// Copies the given rows of `x` into consecutive rows of `out`.
    func gatherRows(_ x: Tensor, rows: [Int], out: Tensor) throws
    /// Samples one token per row of `logits` (row i for `requests[i]`).
    func sample(logits: Tensor, requests: [SampleRequest]) throws -> [SampledToken]
    /// Copies an f32 tensor to the host, row after row (checks and debugging; waits for the device).
    func download(_ tensor: Tensor) throws -> [Float]
    /// A device integer buffer of `count` elements (zeroed), for metadata rewritten every step.
    func makeIntTensor(count: Int) throws -> IntTensor
    /// Copies `values` to the start of `destination` (stream-ordered on a GPU).
    func upload(_ values: [Int32], into destination: IntTensor) throws
    /// One weight holding `parts` one after the other (same columns and dtype), or nil where the
    /// backend gains nothing from fused projections (the CPU reads its weights in place).
    func concatenateRows(_ parts: [Tensor]) throws -> Tensor?
    /// Whether `makeGraph` records graphs (the decoder then keeps fixed per-bucket buffers).
    var supportsGraphs: Bool { get }
    /// Whether calls queue work on a device and return before it is done (a GPU), so that the
    /// host can do other work meanwhile; false where they compute on the calling thread.
    var queuesWork: Bool { get }
    /// Records `body` (calls on fixed buffers only, no host read-back) as a replayable graph, or
    /// returns nil without running it where the backend has no graphs. Recording runs nothing.
    func makeGraph(_ body: () throws -> Void) throws -> AnyObject?
    /// Runs a graph from `makeGraph`.
    func launchGraph(_ graph: AnyObject) throws
}

/// A backend whose device can be cut into SM partitions, each with streams that run jobs at the
/// same time: calls after `selectStream` are queued on that stream, and `enqueueSample` returns
/// without waiting for the device.
public protocol PartitionedBackend: ComputeBackend {
    /// SMs of the device.
    var multiprocessorCount: Int { get }
    /// Replaces the partitionings (SM counts per partition; index 0 is the whole device) with
    /// `streamsPerPartition` streams each; returns the SM counts granted.
    func configurePartitions(_ requested: [[Int]], streamsPerPartition: Int) throws -> [[Int]]
    /// Queues the calls that follow on stream `stream` of a partition.
    func selectStream(partitioning: Int, partition: Int, stream: Int) throws
    /// Queues the calls that follow on the main stream again.
    func selectMainStream()
    /// Identifies the selected stream (graphs recorded on a stream keep its SMs and its scratch,
    /// so they are kept per key and launched only there).
    var selectedStreamKey: Int { get }
    /// Queues sampling of `logits` and the copy of the results to the host.
    func enqueueSample(logits: Tensor, requests: [SampleRequest]) throws -> any PendingSamples
    /// A job's launch is about to be spread over several calls, with other jobs launched in
    /// between: what it uploads must stay valid until `endSlicedLaunch()`.
    func beginSlicedLaunch()
    /// The sliced launch has queued its last kernel (before its `enqueueSample`).
    func endSlicedLaunch()
}

extension PartitionedBackend {
    /// Nothing to keep: uploads stay valid (backends that do not reuse upload memory).
    public func beginSlicedLaunch() {}
    /// Nothing to release.
    public func endSlicedLaunch() {}
}

/// Sampled tokens on their way to the host.
public protocol PendingSamples: AnyObject {
    /// Whether the device has finished the job's work up to the samples' copy.
    func isReady() throws -> Bool
    /// Blocks until the samples are on the host.
    func wait() throws
    /// The sampled tokens, one per request (after `isReady` or `wait`; read once).
    func results() throws -> [SampledToken]
}

/// Samples that were computed at once (a backend that samples on the calling thread).
public final class ReadySamples: PendingSamples {
    private let tokens: [SampledToken]
    /// Samples already on the host.
    public init(_ tokens: [SampledToken]) { self.tokens = tokens }
    /// Always true: the tokens were sampled before this object was made.
    public func isReady() throws -> Bool { true }
    /// Returns at once: nothing is pending.
    public func wait() throws {}
    /// The tokens given to `init`, in request order.
    public func results() throws -> [SampledToken] { tokens }
}

extension ComputeBackend {
    /// A zeroed tensor of the backend's activation type.
    public func makeTensor(rows: Int, columns: Int) throws -> Tensor {
        try makeTensor(rows: rows, columns: columns, dtype: activationDType)
    }
    /// Default: nil, so the decoder keeps separate projection matmuls.
    public func concatenateRows(_ parts: [Tensor]) throws -> Tensor? { nil }
    /// Default (no fused kernel): `rope` over the query and key heads, then `writeKV` of the key and value columns.
    public func ropeWriteKV(qkv: Tensor, queryHeads: Int, kvHeads: Int, headDim: Int, positions: IntTensor,
                            inverseFrequencies: Tensor, layer: PagedKVLayer, slots: IntTensor) throws {
        try rope(qkv.columns(0, count: (queryHeads + kvHeads) * headDim), positions: positions, heads: queryHeads + kvHeads,
                 headDim: headDim, inverseFrequencies: inverseFrequencies)
        try writeKV(keys: qkv.columns(queryHeads * headDim, count: kvHeads * headDim),
                    values: qkv.columns((queryHeads + kvHeads) * headDim, count: kvHeads * headDim),
                    layer: layer, slots: slots, kvHeads: kvHeads, headDim: headDim)
    }
    /// Default: false, no graphs (`makeGraph` returns nil).
    public var supportsGraphs: Bool { false }
    /// Default: calls compute on the calling thread and are done when they return.
    public var queuesWork: Bool { false }
    /// Default: records nothing and does not run `body`; returns nil.
    public func makeGraph(_ body: () throws -> Void) throws -> AnyObject? { nil }
    /// Default: does nothing (a backend without graphs never hands one out).
    public func launchGraph(_ graph: AnyObject) throws {}
}

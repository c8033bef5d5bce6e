import Foundation
import Compute
import LLMuxCore

/// A loaded Llama-family model: runs one job (a flat batch of tokens of many sequences) through
/// every layer, writing keys and values into the paged pool, and returns the logits of the
/// sequences that sample. Follows Hugging Face `modeling_llama.py` (pre-norm decoder layers).
final class DecoderModel {
    let config: ModelConfig
    let weights: DecoderWeights
    let backend: any ComputeBackend
    /// Activations per kind of job: a model's job on the unit's prefill lane may be in flight at
    /// once with its decode or mixed job on another SM partition, so the prefill lane has buffers
    /// of its own; the model's other jobs run one at a time (one lane per model).
    private var scratch: [ActivationSet: DecoderScratch] = [:]
    private var outputs: [ActivationSet: (hidden: Tensor, logits: Tensor)] = [:]
    /// Per decode bucket (sequences, page-table width): fixed metadata and logits, and the graphs.
    private var decodeSlots: [Int: DecodeGraphSlot] = [:]

    init(checkpoint: Checkpoint, backend: any ComputeBackend) throws {
        self.config = checkpoint.config
        self.backend = backend
        self.weights = try DecoderWeights(checkpoint: checkpoint, backend: backend)
    }

    /// Runs `job`; `layerCache(l)` locates layer l's pages. Returns logits, one row per
    /// sequence with a sample request, in job order (valid until the next call).
    func forward(_ job: JobPlan, layerCache: @escaping (Int) -> PagedKVLayer) throws -> Tensor {
        if let logits = try forwardDecodeGraph(job, layerCache: layerCache) { return logits }
        let pass = try beginEager(job, layerCache: layerCache)
        _ = try launchLayers(of: pass, count: weights.layers.count)
        return try finishEager(pass)
    }

    /// Runs `job` and returns the logits of every token of it, one f32 row per token in flat-batch
    /// order, in a new tensor (for scoring text, not for serving: `tokens × vocabulary` floats).
    func forwardAllLogits(_ job: JobPlan, layerCache: @escaping (Int) -> PagedKVLayer) throws -> Tensor {
        let tokens = job.tokenIDs.count
        let pass = try beginEager(job, layerCache: layerCache)
        _ = try launchLayers(of: pass, count: weights.layers.count)
        let logits = try backend.makeTensor(rows: tokens, columns: config.vocabSize, dtype: .f32)
        try backend.matmul(pass.inputs.work.normed.rows(0, count: tokens), weight: weights.lmHead, bias: nil, out: logits)
        return logits
    }

    /// Uploads the job's metadata for an eager forward pass whose layers are launched by
    /// `launchLayers` (all at once, or a few at a time between other jobs' launches).
    func beginEager(_ job: JobPlan, layerCache: @escaping (Int) -> PagedKVLayer) throws -> EagerForward {
        let tokens = job.tokenIDs.count
        let inputs = LayerInputs(tokens: tokens, work: try workspace(tokens: tokens, set: ActivationSet(job)),
                                 ids: try backend.upload(job.tokenIDs), positions: try backend.upload(job.positions),
                                 slots: try backend.upload(job.slotMapping), batch: try attentionBatch(job), layerCache: layerCache)
        return EagerForward(job: job, inputs: inputs)
    }

    /// Launches the next `count` decoder layers of `pass` (the embedding first); true once every
    /// layer is launched: the final-normed hidden states are then in `work.normed`.
    func launchLayers(of pass: EagerForward, count: Int) throws -> Bool {
        if pass.launchedLayers == 0 { try embed(pass.inputs) }
        let end = min(weights.layers.count, pass.launchedLayers + max(1, count))
        try layers(pass.launchedLayers..<end, pass.inputs)
        pass.launchedLayers = end
        return end == weights.layers.count
    }

    /// The logits of the sampled rows of a pass whose layers are all launched.
    func finishEager(_ pass: EagerForward) throws -> Tensor {
        precondition(pass.launchedLayers == weights.layers.count, "finishEager before the last layer")
        let job = pass.job
        let sampledRows = job.sequences.filter { $0.sample != nil }.map { $0.queryStart + $0.queryCount - 1 }
        let outputs = try outputBuffers(rows: sampledRows.count, set: ActivationSet(job))
        let lastHidden = outputs.hidden.rows(0, count: sampledRows.count)
        let logits = outputs.logits.rows(0, count: sampledRows.count)
        if !sampledRows.isEmpty {
            try backend.gatherRows(pass.inputs.work.normed, rows: sampledRows, out: lastHidden)
            try backend.matmul(lastHidden, weight: weights.lmHead, bias: nil, out: logits)
        }
        return logits
    }

    /// The embedding of the job's tokens and the first layer's input norm.
    private func embed(_ inputs: LayerInputs) throws {
        let residual = inputs.work.residual.rows(0, count: inputs.tokens)
        try backend.embedding(ids: inputs.ids, table: weights.embedding, out: residual)
        try backend.rmsNorm(residual, weight: weights.layers[0].inputNorm, eps: config.rmsNormEps,
                            out: inputs.work.normed.rows(0, count: inputs.tokens))
    }

    /// Decoder layers `range` (each ending with the next layer's input norm, or the final norm).
    private func layers(_ range: Range<Int>, _ inputs: LayerInputs) throws {
        let (tokens, work, positions, slots, batch) = (inputs.tokens, inputs.work, inputs.positions, inputs.slots, inputs.batch)
        let (heads, kvHeads, headDim) = (config.headCount, config.kvHeadCount, config.headDim)
        let queryWidth = heads * headDim
        let kvWidth = kvHeads * headDim
        let scale = 1 / Float(headDim).squareRoot()
        let eps = config.rmsNormEps

        let residual = work.residual.rows(0, count: tokens)
        let normed = work.normed.rows(0, count: tokens)
        let qkv = work.qkv.rows(0, count: tokens)
        let queries = qkv.columns(0, count: queryWidth)
        let keys = qkv.columns(queryWidth, count: kvWidth)
        let values = qkv.columns(queryWidth + kvWidth, count: kvWidth)
        let attention = work.attention.rows(0, count: tokens)
        let projected = work.projected.rows(0, count: tokens)
        let gateUp = work.gateUp.rows(0, count: tokens)
        let activated = work.activated.rows(0, count: tokens)

        for index in range {
            let layer = weights.layers[index]
            let cache = inputs.layerCache(index)
            if let fused = layer.fusedQKV {
                try backend.matmul(normed, weight: fused, bias: layer.fusedQKVBias, out: qkv)
            } else {
                try backend.matmul(normed, weight: layer.query, bias: layer.queryBias, out: queries)
                try backend.matmul(normed, weight: layer.key, bias: layer.keyBias, out: keys)
                try backend.matmul(normed, weight: layer.value, bias: layer.valueBias, out: values)
            }
            try backend.ropeWriteKV(qkv: qkv, queryHeads: heads, kvHeads: kvHeads, headDim: headDim, positions: positions,
                                    inverseFrequencies: weights.inverseFrequencies, layer: cache, slots: slots)
            try backend.pagedAttention(queries: queries, layer: cache, batch: batch, heads: heads, kvHeads: kvHeads,
                                       headDim: headDim, scale: scale, out: attention)
            try backend.matmul(attention, weight: layer.output, bias: nil, out: projected)
            try backend.addRMSNorm(residual: residual, projected, weight: layer.postAttentionNorm, eps: eps, out: normed)
            if let fused = layer.fusedGateUp {
                try backend.matmul(normed, weight: fused, bias: nil, out: gateUp)
            } else {
                try backend.matmul(normed, weight: layer.gate, bias: nil, out: gateUp.columns(0, count: config.intermediateSize))
                try backend.matmul(normed, weight: layer.up, bias: nil,
                                   out: gateUp.columns(config.intermediateSize, count: config.intermediateSize))
            }
            try backend.siluMul(gateUp: gateUp, out: activated)
            try backend.matmul(activated, weight: layer.down, bias: nil, out: projected)
            let nextNorm = index + 1 < weights.layers.count ? weights.layers[index + 1].inputNorm : weights.finalNorm
            try backend.addRMSNorm(residual: residual, projected, weight: nextNorm, eps: eps, out: normed)
        }
    }

    /// A pure decode step (one token per sequence, every sequence samples) on a backend with
    /// graphs: the step's metadata goes into fixed per-bucket buffers in one upload, and the
    /// whole forward pass is one recorded graph (recorded on the bucket's second step; the first
    /// runs eagerly so that every kernel and matmul plan is loaded). Nil: not such a step.
    private func forwardDecodeGraph(_ job: JobPlan, layerCache: @escaping (Int) -> PagedKVLayer) throws -> Tensor? {
        let count = job.sequences.count
        // Not a prefill-lane job (one-token prompts): the graphs' buffers are the decode lane's.
        guard backend.supportsGraphs || Self.forceDecodeBuckets, !job.onPrefillLane, count > 0, count <= Self.largestDecodeBucket,
              job.tokenIDs.count == count,
              job.sequences.allSatisfy({ $0.queryCount == 1 && $0.sample != nil }) else { return nil }
        let bucket = count <= 8 ? 1 << (Int.bitWidth - (count - 1).leadingZeroBitCount) : (count + 15) / 16 * 16
        let widest = max(1, job.sequences.map(\.pageTable.count).max() ?? 1)
        let pages = max(16, 1 << (Int.bitWidth - (widest - 1).leadingZeroBitCount))
        // Room for the largest bucket from the start: regrowing the workspace drops every
        // recorded graph (they point into it), and recording them again costs host time.
        let work = try workspace(tokens: Self.largestDecodeBucket, set: .decode)
        let key = bucket << 32 | pages
        var slot: DecodeGraphSlot
        if let existing = decodeSlots[key] {
            slot = existing
        } else {
            slot = DecodeGraphSlot(meta: try backend.makeIntTensor(count: 5 * bucket + 1 + bucket * pages),
                                   logits: try backend.makeTensor(rows: bucket, columns: config.vocabSize, dtype: .f32))
        }
        // Layout: ids, positions, slots, query starts (bucket + 1), context lengths, page tables.
        var meta = [Int32](repeating: 0, count: 5 * bucket + 1 + bucket * pages)
        for (row, sequence) in job.sequences.enumerated() {
            meta[row] = Int32(job.tokenIDs[sequence.queryStart])
            meta[bucket + row] = job.positions[sequence.queryStart]
            meta[2 * bucket + row] = job.slotMapping[sequence.queryStart]
            meta[4 * bucket + 1 + row] = Int32(sequence.contextLength)
            let table = 5 * bucket + 1 + row * pages
            for (index, page) in sequence.pageTable.enumerated() { meta[table + index] = page }
        }
        for row in count..<bucket { meta[2 * bucket + row] = -1 }   // padding rows write no KV and see no context
        for row in 0...bucket { meta[3 * bucket + row] = Int32(row) }
        try backend.upload(meta, into: slot.meta)

        let ids = slot.meta.slice(0, count: bucket)
        let positions = slot.meta.slice(bucket, count: bucket)
        let slots = slot.meta.slice(2 * bucket, count: bucket)
        let batch = AttentionBatch(queryStarts: slot.meta.slice(3 * bucket, count: bucket + 1),
                                   contextLengths: slot.meta.slice(4 * bucket + 1, count: bucket),
                                   pageTables: slot.meta.slice(5 * bucket + 1, count: bucket * pages),
                                   sequenceCount: bucket, maxPages: pages, maxQueryCount: 1, maxContextLength: 0)
        let logits = slot.logits
        func body() throws {
            let inputs = LayerInputs(tokens: bucket, work: work, ids: ids, positions: positions, slots: slots, batch: batch,
                                     layerCache: layerCache)
            try embed(inputs)
            try layers(0..<weights.layers.count, inputs)
            try backend.matmul(work.normed.rows(0, count: bucket), weight: weights.lmHead, bias: nil, out: logits)
        }
        // A graph keeps the SMs and the scratch of the stream it was recorded on, so each stream
        // records its own; the first step on each runs eagerly (loads kernels and plans).
        let streamKey = (backend as? PartitionedBackend)?.selectedStreamKey ?? 0
        if let graph = slot.graphs[streamKey] {
            try backend.launchGraph(graph)
        } else if !slot.eagerStreams.contains(streamKey) {
            try body()
            slot.eagerStreams.insert(streamKey)
        } else if let graph = try backend.makeGraph(body) {
            slot.graphs[streamKey] = graph
            try backend.launchGraph(graph)
        } else {
            try body()
        }
        decodeSlots[key] = slot
        return logits.rows(0, count: count)
    }

    /// Most sequences of a decode step that runs as a recorded graph.
    static let largestDecodeBucket = 256

    /// Runs the bucketed decode path without graphs too (`LLMUX_DECODE_BUCKETS=1`; checks on the CPU).
    static let forceDecodeBuckets = ProcessInfo.processInfo.environment["LLMUX_DECODE_BUCKETS"] == "1"

    /// Fixed buffers for the gathered last hidden rows and their logits.
    private func outputBuffers(rows: Int, set: ActivationSet) throws -> (hidden: Tensor, logits: Tensor) {
        if let existing = outputs[set], existing.hidden.rows >= rows { return existing }
        let capacity = max(rows, (outputs[set]?.hidden.rows ?? 0) * 2, 8)
        outputs[set] = nil
        let created = (hidden: try backend.makeTensor(rows: capacity, columns: config.hiddenSize),
                       logits: try backend.makeTensor(rows: capacity, columns: config.vocabSize, dtype: .f32))
        outputs[set] = created
        return created
    }

    /// Query offsets, context lengths and padded page tables of the job's sequences.
    private func attentionBatch(_ job: JobPlan) throws -> AttentionBatch {
        let maxPages = max(1, job.sequences.map(\.pageTable.count).max() ?? 1)
        var starts: [Int32] = [0]
        var lengths: [Int32] = []
        var tables: [Int32] = []
        tables.reserveCapacity(maxPages * job.sequences.count)
        for sequence in job.sequences {
            starts.append(Int32(sequence.queryStart + sequence.queryCount))
            lengths.append(Int32(sequence.contextLength))
            tables.append(contentsOf: sequence.pageTable)
            tables.append(contentsOf: repeatElement(0, count: maxPages - sequence.pageTable.count))
        }
        let maxQueryCount = job.sequences.map(\.queryCount).max() ?? 0
        // A mixed step's decode tokens, so that a GPU need not run them through its prompt kernel.
        let singleRows = maxQueryCount > 1 ? job.sequences.filter { $0.queryCount == 1 }.map { Int32($0.queryStart) } : []
        return AttentionBatch(queryStarts: try backend.upload(starts), contextLengths: try backend.upload(lengths),
                              pageTables: try backend.upload(tables), sequenceCount: job.sequences.count, maxPages: maxPages,
                              maxQueryCount: maxQueryCount,
                              maxContextLength: job.sequences.map(\.contextLength).max() ?? 0,
                              decodeTokenRows: singleRows.isEmpty ? nil : try backend.upload(singleRows))
    }

    /// Activation buffers reused across steps; regrown when a step has more tokens.
    private func workspace(tokens: Int, set: ActivationSet) throws -> DecoderScratch {
        if let existing = scratch[set], existing.capacity >= tokens { return existing }
        let capacity = max(tokens, (scratch[set]?.capacity ?? 0) * 2, 16)
        scratch[set] = nil
        if set == .decode { decodeSlots = [:] }   // recorded graphs point into the old buffers
        let created = try DecoderScratch(capacity: capacity, config: config, backend: backend)
        scratch[set] = created
        return created
    }

    /// The activation buffers a job computes in (`ActivationSet(job)`), so that no two jobs of the
    /// model that can run at once share them.
    func activations(for job: JobPlan) -> DecoderScratch? { scratch[ActivationSet(job)] }
}

/// Which of a model's activation buffers a job uses.
enum ActivationSet: Hashable {
    /// Jobs of the unit's prefill lane, which may run beside the model's other job.
    case prefillLane
    /// The model's other jobs with prompt tokens (one at a time).
    case prefill
    /// Its decode jobs (one at a time; the recorded graphs point into these).
    case decode

    init(_ job: JobPlan) {
        self = job.onPrefillLane ? .prefillLane : job.phase == .prefill ? .prefill : .decode
    }
}

/// Fixed buffers (and, once recorded, the graph) of one decode bucket.
struct DecodeGraphSlot {
    let meta: IntTensor
    let logits: Tensor
    /// Recorded graphs by stream key (`PartitionedBackend.selectedStreamKey`).
    var graphs: [Int: AnyObject] = [:]
    /// Stream keys on which the bucket already ran once without a graph.
    var eagerStreams: Set<Int> = []
    init(meta: IntTensor, logits: Tensor) {
        self.meta = meta
        self.logits = logits
    }
}

/// What every layer of one forward pass reads: its token count, activations and metadata.
struct LayerInputs {
    let tokens: Int
    let work: DecoderScratch
    let ids, positions, slots: IntTensor
    let batch: AttentionBatch
    let layerCache: (Int) -> PagedKVLayer
}

/// An eager forward pass under way: its inputs and how many layers are launched
/// (`DecoderModel.launchLayers`).
final class EagerForward {
    /// The job it runs.
    let job: JobPlan
    let inputs: LayerInputs
    /// Decoder layers launched so far (the embedding goes with the first).
    var launchedLayers = 0
    init(job: JobPlan, inputs: LayerInputs) {
        self.job = job
        self.inputs = inputs
    }
}

/// Per-step activations of a decoder, sized for `capacity` tokens.
struct DecoderScratch {
    let capacity: Int
    let residual, normed, qkv, attention, projected, gateUp, activated: Tensor

    init(capacity: Int, config: ModelConfig, backend: any ComputeBackend) throws {
        let queryWidth = config.headCount * config.headDim
        let kvWidth = config.kvHeadCount * config.headDim
        self.capacity = capacity
        // The residual stream stays in f32 on every backend (bf16 would round it at every layer).
        residual = try backend.makeTensor(rows: capacity, columns: config.hiddenSize, dtype: .f32)
        normed = try backend.makeTensor(rows: capacity, columns: config.hiddenSize)
        qkv = try backend.makeTensor(rows: capacity, columns: queryWidth + 2 * kvWidth)
        attention = try backend.makeTensor(rows: capacity, columns: queryWidth)
        projected = try backend.makeTensor(rows: capacity, columns: config.hiddenSize)
        gateUp = try backend.makeTensor(rows: capacity, columns: 2 * config.intermediateSize)
        activated = try backend.makeTensor(rows: capacity, columns: config.intermediateSize)
    }
}

import Compute
import LLMuxCore

/// A loaded Llama-family model: runs one job (a flat batch of tokens of many sequences) through
/// every layer, writing keys and values into the paged pool, and returns the logits of the
/// sequences that sample. Follows Hugging Face `modeling_llama.py` (pre-norm decoder layers).
final class DecoderModel {
    let config: ModelConfig
    let weights: DecoderWeights
    let backend: any ComputeBackend
    private var scratch: DecoderScratch?

    init(checkpoint: Checkpoint, backend: any ComputeBackend) throws {
        self.config = checkpoint.config
        self.backend = backend
        self.weights = try DecoderWeights(checkpoint: checkpoint, backend: backend)
    }

    /// Runs `job`; `layerCache(l)` locates layer l's pages. Returns logits, one row per
    /// sequence with a sample request, in job order.
    func forward(_ job: JobPlan, layerCache: (Int) -> PagedKVLayer) throws -> Tensor {
        let tokens = job.tokenIDs.count
        let work = try workspace(tokens: tokens)
        let ids = try backend.upload(job.tokenIDs)
        let positions = try backend.upload(job.positions)
        let slots = try backend.upload(job.slotMapping)
        let batch = try attentionBatch(job)
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

        try backend.embedding(ids: ids, table: weights.embedding, out: residual)
        try backend.rmsNorm(residual, weight: weights.layers[0].inputNorm, eps: eps, out: normed)
        for (index, layer) in weights.layers.enumerated() {
            let cache = layerCache(index)
            try backend.matmul(normed, weight: layer.query, bias: layer.queryBias, out: queries)
            try backend.matmul(normed, weight: layer.key, bias: layer.keyBias, out: keys)
            try backend.matmul(normed, weight: layer.value, bias: layer.valueBias, out: values)
            try backend.rope(queries, positions: positions, heads: heads, headDim: headDim, inverseFrequencies: weights.inverseFrequencies)
            try backend.rope(keys, positions: positions, heads: kvHeads, headDim: headDim, inverseFrequencies: weights.inverseFrequencies)
            try backend.writeKV(keys: keys, values: values, layer: cache, slots: slots, kvHeads: kvHeads, headDim: headDim)
            try backend.pagedAttention(queries: queries, layer: cache, batch: batch, heads: heads, kvHeads: kvHeads,
                                   headDim: headDim, scale: scale, out: attention)
            try backend.matmul(attention, weight: layer.output, bias: nil, out: projected)
            try backend.addRMSNorm(residual: residual, projected, weight: layer.postAttentionNorm, eps: eps, out: normed)
            try backend.matmul(normed, weight: layer.gate, bias: nil, out: gateUp.columns(0, count: config.intermediateSize))
            try backend.matmul(normed, weight: layer.up, bias: nil, out: gateUp.columns(config.intermediateSize, count: config.intermediateSize))
            try backend.siluMul(gateUp: gateUp, out: activated)
            try backend.matmul(activated, weight: layer.down, bias: nil, out: projected)
            let nextNorm = index + 1 < weights.layers.count ? weights.layers[index + 1].inputNorm : weights.finalNorm
            try backend.addRMSNorm(residual: residual, projected, weight: nextNorm, eps: eps, out: normed)
        }

        let sampledRows = job.sequences.filter { $0.sample != nil }.map { $0.queryStart + $0.queryCount - 1 }
        let lastHidden = try backend.makeTensor(rows: sampledRows.count, columns: config.hiddenSize)
        try backend.gatherRows(normed, rows: sampledRows, out: lastHidden)
        let logits = try backend.makeTensor(rows: sampledRows.count, columns: config.vocabSize, dtype: .f32)
        if !sampledRows.isEmpty {
            try backend.matmul(lastHidden, weight: weights.lmHead, bias: nil, out: logits)
        }
        return logits
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
        return AttentionBatch(queryStarts: try backend.upload(starts), contextLengths: try backend.upload(lengths),
                              pageTables: try backend.upload(tables), sequenceCount: job.sequences.count, maxPages: maxPages,
                              maxQueryCount: job.sequences.map(\.queryCount).max() ?? 0,
                              maxContextLength: job.sequences.map(\.contextLength).max() ?? 0)
    }

    /// Activation buffers reused across steps; regrown when a step has more tokens.
    private func workspace(tokens: Int) throws -> DecoderScratch {
        if let scratch, scratch.capacity >= tokens { return scratch }
        let capacity = max(tokens, (scratch?.capacity ?? 0) * 2, 16)
        scratch = nil
        let created = try DecoderScratch(capacity: capacity, config: config, backend: backend)
        scratch = created
        return created
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

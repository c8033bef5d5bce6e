import Compute
import LLMuxCore

/// One decoder layer's weights as backend tensors.
struct LayerWeights {
    let inputNorm: Tensor
    let postAttentionNorm: Tensor
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let queryBias: Tensor?
    let keyBias: Tensor?
    let valueBias: Tensor?
    let output: Tensor
    let gate: Tensor
    let up: Tensor
    let down: Tensor
    /// Query, key and value rows in one matrix (and their biases), where the backend fuses them.
    let fusedQKV: Tensor?
    let fusedQKVBias: Tensor?
    /// Gate and up rows in one matrix, where the backend fuses them.
    let fusedGateUp: Tensor?
}

/// A whole model's weights. Matrices and norms stay in their stored dtype (on the CPU they are
/// the memory-mapped file itself, read in place; a GPU copies them to the device); biases are
/// widened to f32 once.
struct DecoderWeights {
    let embedding: Tensor
    let layers: [LayerWeights]
    let finalNorm: Tensor
    let lmHead: Tensor
    let inverseFrequencies: Tensor

    /// Binds every tensor of `checkpoint`, checking names and shapes against its config.
    init(checkpoint: Checkpoint, backend: any ComputeBackend) throws {
        let config = checkpoint.config
        try config.architecture.decoder.validate(config, file: checkpoint.directory.appendingPathComponent("config.json").path)
        let hidden = config.hiddenSize
        let queryWidth = config.headCount * config.headDim
        let kvWidth = config.kvHeadCount * config.headDim

        func matrix(_ name: String, _ rows: Int, _ columns: Int) throws -> Tensor {
            let view = try checkpoint.weight(name, shape: [rows, columns])
            return try backend.makeWeight(address: view.pointer, dtype: view.dtype, rows: rows, columns: columns, owner: checkpoint)
        }
        func vector(_ name: String, _ count: Int) throws -> Tensor {
            let view = try checkpoint.weight(name, shape: [count])
            return try backend.makeWeight(address: view.pointer, dtype: view.dtype, rows: 1, columns: count, owner: checkpoint)
        }
        func bias(_ name: String, _ count: Int) throws -> Tensor {
            let view = try checkpoint.weight(name, shape: [count])
            return try backend.upload(floats: Kernels.toFloat(view.pointer, dtype: view.dtype, count: count))
        }

        embedding = try matrix("model.embed_tokens.weight", config.vocabSize, hidden)
        let hasBias = config.architecture.decoder.hasQKVBias(config)
        layers = try (0..<config.layerCount).map { index in
            let names = LayerWeightNames(layer: index)
            var query = try matrix(names.attention("q_proj"), queryWidth, hidden)
            var key = try matrix(names.attention("k_proj"), kvWidth, hidden)
            var value = try matrix(names.attention("v_proj"), kvWidth, hidden)
            var gate = try matrix(names.mlp("gate_proj"), config.intermediateSize, hidden)
            var up = try matrix(names.mlp("up_proj"), config.intermediateSize, hidden)
            var fusedQKVBias: Tensor?
            let fusedQKV = try backend.concatenateRows([query, key, value])
            if let fusedQKV {
                query = fusedQKV.rows(0, count: queryWidth)
                key = fusedQKV.rows(queryWidth, count: kvWidth)
                value = fusedQKV.rows(queryWidth + kvWidth, count: kvWidth)
                if hasBias {
                    var floats: [Float] = []
                    for (name, count) in [("q_proj", queryWidth), ("k_proj", kvWidth), ("v_proj", kvWidth)] {
                        let view = try checkpoint.weight(names.attention(name, "bias"), shape: [count])
                        floats += Kernels.toFloat(view.pointer, dtype: view.dtype, count: count)
                    }
                    fusedQKVBias = try backend.upload(floats: floats)
                }
            }
            let fusedGateUp = try backend.concatenateRows([gate, up])
            if let fusedGateUp {
                gate = fusedGateUp.rows(0, count: config.intermediateSize)
                up = fusedGateUp.rows(config.intermediateSize, count: config.intermediateSize)
            }
            return LayerWeights(
                inputNorm: try vector(names.inputNorm, hidden),
                postAttentionNorm: try vector(names.postAttentionNorm, hidden),
                query: query, key: key, value: value,
                queryBias: hasBias ? try bias(names.attention("q_proj", "bias"), queryWidth) : nil,
                keyBias: hasBias ? try bias(names.attention("k_proj", "bias"), kvWidth) : nil,
                valueBias: hasBias ? try bias(names.attention("v_proj", "bias"), kvWidth) : nil,
                output: try matrix(names.attention("o_proj"), hidden, queryWidth),
                gate: gate, up: up,
                down: try matrix(names.mlp("down_proj"), hidden, config.intermediateSize),
                fusedQKV: fusedQKV, fusedQKVBias: fusedQKVBias, fusedGateUp: fusedGateUp)
        }
        finalNorm = try vector("model.norm.weight", hidden)
        if config.tieWordEmbeddings && !checkpoint.hasWeight("lm_head.weight") {
            lmHead = embedding
        } else {
            lmHead = try matrix("lm_head.weight", config.vocabSize, hidden)
        }
        let frequencies = config.inverseFrequencies()
        inverseFrequencies = try backend.upload(floats: frequencies)
    }
}

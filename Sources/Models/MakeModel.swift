import Compute
import Foundation
import LLMuxCore

/// What make-model writes.
public struct MakeModelOptions: Sendable {
    /// Shape of the model; its BOS/EOS are replaced by `MiniTokenizer`'s.
    public var config: ModelConfig
    /// Stored element type.
    public var dtype: DType
    /// Seed of the weights; the same seed gives the same bytes.
    public var seed: UInt64
    /// Standard deviation of the normal initialisation.
    public var weightScale: Float
    /// Largest shard; nil shards only models over `ModelMaker.defaultShardBytes`.
    public var maxShardBytes: Int?

    /// Options with the usual defaults (bf16, seed 0, std 0.02, one file up to 4 GB).
    public init(config: ModelConfig, dtype: DType = .bf16, seed: UInt64 = 0, weightScale: Float = 0.02, maxShardBytes: Int? = nil) {
        self.config = config
        self.dtype = dtype
        self.seed = seed
        self.weightScale = weightScale
        self.maxShardBytes = maxShardBytes
    }
}

/// Writes complete random-weight Hugging Face checkpoints (configs, tokenizer, safetensors).
public enum ModelMaker {
    /// Shard size used when `maxShardBytes` is nil.
    public static let defaultShardBytes = 4_000_000_000

    /// Every weight of `config`, in Hugging Face names, shapes and order.
    public static func tensorLayout(_ config: ModelConfig) -> [(name: String, shape: [Int])] {
        let hidden = config.hiddenSize
        let qWidth = config.headCount * config.headDim
        let kvWidth = config.kvHeadCount * config.headDim
        var tensors: [(name: String, shape: [Int])] = [("model.embed_tokens.weight", [config.vocabSize, hidden])]
        for layer in 0..<config.layerCount {
            let prefix = "model.layers.\(layer)."
            tensors.append((prefix + "input_layernorm.weight", [hidden]))
            tensors.append((prefix + "self_attn.q_proj.weight", [qWidth, hidden]))
            tensors.append((prefix + "self_attn.k_proj.weight", [kvWidth, hidden]))
            tensors.append((prefix + "self_attn.v_proj.weight", [kvWidth, hidden]))
            if config.attentionBias {
                tensors.append((prefix + "self_attn.q_proj.bias", [qWidth]))
                tensors.append((prefix + "self_attn.k_proj.bias", [kvWidth]))
                tensors.append((prefix + "self_attn.v_proj.bias", [kvWidth]))
            }
            tensors.append((prefix + "self_attn.o_proj.weight", [hidden, qWidth]))
            tensors.append((prefix + "post_attention_layernorm.weight", [hidden]))
            tensors.append((prefix + "mlp.gate_proj.weight", [config.intermediateSize, hidden]))
            tensors.append((prefix + "mlp.up_proj.weight", [config.intermediateSize, hidden]))
            tensors.append((prefix + "mlp.down_proj.weight", [hidden, config.intermediateSize]))
        }
        tensors.append(("model.norm.weight", [hidden]))
        if !config.tieWordEmbeddings { tensors.append(("lm_head.weight", [config.vocabSize, hidden])) }
        return tensors
    }

    /// Writes the checkpoint into `directory` (created if needed; earlier `model*.safetensors`
    /// files there are removed so they cannot mix with the new ones), reporting bytes written.
    public static func write(_ options: MakeModelOptions, to directory: URL, progress: ((LoadProgress) -> Void)?) throws {
        var config = options.config
        config.bosTokenID = MiniTokenizer.bosTokenID
        config.eosTokenIDs = [MiniTokenizer.eosTokenID]
        try config.validate(file: directory.appendingPathComponent("config.json").path)
        guard config.vocabSize >= MiniTokenizer.size else {
            throw LLMuxError.invalidRequest("vocab_size \(config.vocabSize) is smaller than the tokenizer's \(MiniTokenizer.size) tokens")
        }
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in try fileManager.contentsOfDirectory(atPath: directory.path)
        where name.hasPrefix("model") && (name.hasSuffix(".safetensors") || name == "model.safetensors.index.json") {
            try fileManager.removeItem(at: directory.appendingPathComponent(name))
        }

        let layout = tensorLayout(config)
        let shards = planShards(layout, dtype: options.dtype, maxBytes: options.maxShardBytes ?? defaultShardBytes)
        let totalBytes = layout.reduce(0) { $0 + $1.shape.reduce(1, *) * options.dtype.byteSize }
        var done = 0
        var weightMap: [String: String] = [:]
        for (index, shard) in shards.enumerated() {
            let fileName = shards.count == 1
                ? "model.safetensors"
                : String(format: "model-%05d-of-%05d.safetensors", index + 1, shards.count)
            let writer = SafetensorsWriter(
                url: directory.appendingPathComponent(fileName),
                tensors: shard.map { ($0.name, options.dtype, $0.shape) },
                metadata: ["format": "pt"])   // transformers refuses safetensors without format "pt"
            try writer.write { name, buffer in
                let count = buffer.count / options.dtype.byteSize
                // Norm weights start near 1 as in trained models; everything else near 0.
                let isNorm = name.hasSuffix("norm.weight")
                RandomWeights.fill(buffer, dtype: options.dtype, count: count, name: name, seed: options.seed,
                                   mean: isNorm ? 1 : 0, std: options.weightScale)
                done += buffer.count
                weightMap[name] = fileName
                progress?(LoadProgress(bytesDone: done, bytesTotal: totalBytes, file: fileName))
            }
        }
        if shards.count > 1 {
            let index: [String: Any] = ["metadata": ["total_size": totalBytes], "weight_map": weightMap]
            try prettyJSON(index).write(to: directory.appendingPathComponent("model.safetensors.index.json"))
        }
        try config.jsonData(dtype: options.dtype).write(to: directory.appendingPathComponent("config.json"))
        let generation = GenerationConfig(eosTokenIDs: [MiniTokenizer.eosTokenID, MiniTokenizer.imEndTokenID],
                                          bosTokenID: MiniTokenizer.bosTokenID)
        try generation.jsonData().write(to: directory.appendingPathComponent("generation_config.json"))
        try MiniTokenizer.write(to: directory, modelMaxLength: config.maxPositionEmbeddings)
    }

    /// Packs tensors, in order, into shards of at most `maxBytes` (a larger tensor gets its own).
    static func planShards(_ layout: [(name: String, shape: [Int])], dtype: DType, maxBytes: Int) -> [[(name: String, shape: [Int])]] {
        var shards: [[(name: String, shape: [Int])]] = [[]]
        var current = 0
        for tensor in layout {
            let size = tensor.shape.reduce(1, *) * dtype.byteSize
            if current + size > maxBytes && !shards[shards.count - 1].isEmpty {
                shards.append([])
                current = 0
            }
            shards[shards.count - 1].append(tensor)
            current += size
        }
        return shards
    }
}

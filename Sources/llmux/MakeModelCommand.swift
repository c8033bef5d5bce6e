import ArgumentParser
import Compute
import Foundation
import LLMuxCore
import Models

/// `llmux make-model`: a random-weight checkpoint in Hugging Face layout, for tests and
/// benchmarks where no weights can be downloaded.
struct MakeModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-model",
        abstract: "Write a random-weight Hugging Face checkpoint of a real architecture and size.",
        discussion: "Presets: \(ModelPreset.all.keys.sorted().joined(separator: ", ")). Without --preset, give the shape with --hidden, --layers, --heads (and optionally the rest).")

    @Option(help: "Architecture: llama, qwen2 or mistral (default: the preset's, else llama).")
    var arch: String?
    @Option(help: "A named shape (see the list above).")
    var preset: String?
    @Option(help: "Hidden size.") var hidden: Int?
    @Option(help: "Decoder layers.") var layers: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(help: "Key/value heads (default: --heads).") var kvHeads: Int?
    @Option(help: "Head size (default: hidden / heads).") var headDim: Int?
    @Option(help: "MLP intermediate size (default: about 8/3 hidden).") var intermediate: Int?
    @Option(help: "Vocabulary size (at least 258 for the bundled byte-level tokenizer).") var vocab = 32000
    @Option(help: "Maximum positions.") var maxPositions = 4096
    @Flag(help: "Tie the output head to the embedding.") var tieEmbeddings = false
    @Option(help: "Output directory (created).") var out: String
    @Option(help: "Stored dtype: f32, f16 or bf16.") var dtype = "bf16"
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 0
    @Option(help: "Standard deviation of the weights.") var weightScale: Float = 0.02
    @Option(help: "Split into shards of at most this size, e.g. 2GiB (default: shards of 4 GiB for large models).")
    var maxShardSize: ByteSize?

    func run() throws {
        guard let storedType = DType(rawValue: dtype.uppercased()) else { throw ValidationError("--dtype must be f32, f16 or bf16") }
        var config = try baseConfig()
        if let arch {
            guard let architecture = Architecture.named(arch) else { throw ValidationError("--arch must be llama, qwen2 or mistral") }
            config.architecture = architecture
            if architecture == .qwen2 { config.attentionBias = true }
        }
        let options = MakeModelOptions(config: config, dtype: storedType, seed: seed, weightScale: weightScale,
                                       maxShardBytes: maxShardSize?.bytes)
        let directory = URL(fileURLWithPath: out)
        var lastPercent = -1
        try ModelMaker.write(options, to: directory) { progress in
            let percent = progress.bytesTotal > 0 ? progress.bytesDone * 100 / progress.bytesTotal : 100
            if percent / 5 != lastPercent / 5 {
                lastPercent = percent
                report("writing \(progress.file): \(percent)%")
            }
        }
        report("wrote \(config.architecture.rawValue) with \(config.parameterCount) parameters (\(dtype)) to \(out)")
    }

    private func baseConfig() throws -> ModelConfig {
        if let preset {
            guard let found = ModelPreset.all[preset] else {
                throw ValidationError("unknown preset '\(preset)'; choose one of \(ModelPreset.all.keys.sorted().joined(separator: ", "))")
            }
            return found.config
        }
        guard let hidden, let layers, let heads else { throw ValidationError("give --preset NAME, or --hidden, --layers and --heads") }
        guard hidden > 0, layers > 0, heads > 0, hidden % heads == 0 || headDim != nil else {
            throw ValidationError("--hidden must be a positive multiple of --heads (or give --head-dim)")
        }
        let kv = kvHeads ?? heads
        guard heads % kv == 0 else { throw ValidationError("--heads must be a multiple of --kv-heads") }
        return ModelConfig(
            architecture: .llama, hiddenSize: hidden, intermediateSize: intermediate ?? ((hidden * 8 / 3 + 63) / 64 * 64),
            layerCount: layers, headCount: heads, kvHeadCount: kv, headDim: headDim ?? hidden / heads, vocabSize: vocab,
            rmsNormEps: 1e-5, ropeTheta: 500_000, ropeScaling: .none, maxPositionEmbeddings: maxPositions,
            tieWordEmbeddings: tieEmbeddings, attentionBias: false, bosTokenID: nil, eosTokenIDs: [], slidingWindow: nil)
    }
}

extension Architecture {
    /// `llama`, `qwen2` or `mistral`.
    static func named(_ name: String) -> Architecture? {
        switch name.lowercased() {
        case "llama": return .llama
        case "qwen2": return .qwen2
        case "mistral": return .mistral
        default: return nil
        }
    }
}

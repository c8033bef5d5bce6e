import LLMuxCore

/// A named model shape that make-model can fill with random weights.
///
/// Shapes follow the published configs; BOS/EOS point at `MiniTokenizer`'s specials because a
/// made model ships that tokenizer, not the original vocabulary.
public struct ModelPreset: Sendable {
    /// The preset's name (`llama3-8b`, `tiny-llama`…).
    public let name: String
    /// Its configuration.
    public let config: ModelConfig

    /// Every preset, by name.
    public static let all: [String: ModelPreset] = Dictionary(
        uniqueKeysWithValues: presets.map { ($0.name, $0) })

    private static let llama3Scaling = RopeScaling.llama3(
        factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)

    private static func make(
        _ name: String, _ architecture: Architecture, hidden: Int, intermediate: Int, layers: Int, heads: Int,
        kvHeads: Int, headDim: Int? = nil, vocab: Int, eps: Float, theta: Double, scaling: RopeScaling = .none,
        maxPositions: Int, tied: Bool
    ) -> ModelPreset {
        ModelPreset(name: name, config: ModelConfig(
            architecture: architecture, hiddenSize: hidden, intermediateSize: intermediate, layerCount: layers,
            headCount: heads, kvHeadCount: kvHeads, headDim: headDim ?? hidden / heads, vocabSize: vocab,
            rmsNormEps: eps, ropeTheta: theta, ropeScaling: scaling, maxPositionEmbeddings: maxPositions,
            tieWordEmbeddings: tied, attentionBias: architecture == .qwen2,
            bosTokenID: MiniTokenizer.bosTokenID, eosTokenIDs: [MiniTokenizer.eosTokenID], slidingWindow: nil))
    }

    private static let presets: [ModelPreset] = [
        // Meta-Llama-3-8B (3.0: no rope scaling).
        make("llama3-8b", .llama, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8,
             vocab: 128_256, eps: 1e-5, theta: 500_000, maxPositions: 8192, tied: false),
        make("llama3.2-1b", .llama, hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8, headDim: 64,
             vocab: 128_256, eps: 1e-5, theta: 500_000, scaling: llama3Scaling, maxPositions: 131_072, tied: true),
        make("llama3.2-3b", .llama, hidden: 3072, intermediate: 8192, layers: 28, heads: 24, kvHeads: 8, headDim: 128,
             vocab: 128_256, eps: 1e-5, theta: 500_000, scaling: llama3Scaling, maxPositions: 131_072, tied: true),
        make("qwen2.5-0.5b", .qwen2, hidden: 896, intermediate: 4864, layers: 24, heads: 14, kvHeads: 2,
             vocab: 151_936, eps: 1e-6, theta: 1_000_000, maxPositions: 32768, tied: true),
        // Mistral-7B-v0.2 shapes (v0.3 differs only in vocab_size 32768).
        make("mistral-7b", .mistral, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128,
             vocab: 32000, eps: 1e-5, theta: 1_000_000, maxPositions: 32768, tied: false),
        // About 125M parameters: big enough for throughput work, small enough for CI.
        make("llama-100m", .llama, hidden: 768, intermediate: 2048, layers: 12, heads: 12, kvHeads: 4,
             vocab: 32000, eps: 1e-5, theta: 10000, maxPositions: 2048, tied: false),
        // A few hundred thousand parameters each, for tests.
        make("tiny-llama", .llama, hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2,
             vocab: 512, eps: 1e-5, theta: 10000, maxPositions: 2048, tied: false),
        make("tiny-qwen2", .qwen2, hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2,
             vocab: 512, eps: 1e-6, theta: 1_000_000, maxPositions: 2048, tied: true),
        // head_dim 32 ≠ hidden / heads (16), as real Mistral-style configs allow.
        make("tiny-mistral", .mistral, hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 32,
             vocab: 512, eps: 1e-5, theta: 10000, maxPositions: 2048, tied: false),
    ]
}

import Foundation
import LLMuxCore

/// Decoder architectures this server runs, named as in `config.json`'s `architectures`.
public enum Architecture: String, Sendable, CaseIterable {
    /// Llama 2/3 and derivatives.
    case llama = "LlamaForCausalLM"
    /// Mistral (Llama with explicit head_dim and optional sliding window).
    case mistral = "MistralForCausalLM"
    /// Qwen2 / Qwen2.5 (Llama with q/k/v biases).
    case qwen2 = "Qwen2ForCausalLM"

    /// The `model_type` Hugging Face pairs with the architecture.
    public var modelType: String {
        switch self {
        case .llama: return "llama"
        case .mistral: return "mistral"
        case .qwen2: return "qwen2"
        }
    }
}

/// How RoPE frequencies are stretched for long contexts.
public enum RopeScaling: Sendable, Equatable {
    /// Plain RoPE (`rope_type: default` or no scaling).
    case none
    /// Every frequency divided by `factor` (`rope_type: linear`).
    case linear(factor: Double)
    /// Llama 3.1's wavelength-dependent interpolation (`rope_type: llama3`).
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
}

/// The shape and hyperparameters of a decoder, read from or written to `config.json`.
public struct ModelConfig: Sendable, Equatable {
    /// Which architecture (`architectures[0]`).
    public var architecture: Architecture
    /// Model width (`hidden_size`).
    public var hiddenSize: Int
    /// MLP width (`intermediate_size`).
    public var intermediateSize: Int
    /// Decoder layers (`num_hidden_layers`).
    public var layerCount: Int
    /// Query heads (`num_attention_heads`).
    public var headCount: Int
    /// Key/value heads (`num_key_value_heads`); divides `headCount`.
    public var kvHeadCount: Int
    /// Size of one head (`head_dim`, default `hiddenSize / headCount`).
    public var headDim: Int
    /// Rows of the embedding and LM head (`vocab_size`).
    public var vocabSize: Int
    /// RMSNorm epsilon (`rms_norm_eps`).
    public var rmsNormEps: Float
    /// RoPE base (`rope_theta`).
    public var ropeTheta: Double
    /// RoPE scaling (`rope_scaling` / `rope_parameters`).
    public var ropeScaling: RopeScaling
    /// Context length (`max_position_embeddings`).
    public var maxPositionEmbeddings: Int
    /// True when the LM head reuses the embedding matrix (no `lm_head.weight`).
    public var tieWordEmbeddings: Bool
    /// True when q/k/v projections have biases (always for Qwen2).
    public var attentionBias: Bool
    /// Beginning-of-sequence token (`bos_token_id`).
    public var bosTokenID: TokenID?
    /// End-of-sequence tokens (`eos_token_id`, an int or a list).
    public var eosTokenIDs: [TokenID]
    /// Sliding attention window, when the model uses one.
    public var slidingWindow: Int?

    /// A configuration from its fields (used by make-model and tests).
    public init(
        architecture: Architecture, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        kvHeadCount: Int, headDim: Int, vocabSize: Int, rmsNormEps: Float = 1e-6, ropeTheta: Double = 10000,
        ropeScaling: RopeScaling = .none, maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false,
        attentionBias: Bool = false, bosTokenID: TokenID? = nil, eosTokenIDs: [TokenID] = [], slidingWindow: Int? = nil
    ) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.slidingWindow = slidingWindow
    }

    /// Throws `badCheckpoint` for sizes no forward pass could run: non-positive sizes, heads
    /// not divisible by KV heads, an odd head size (RoPE rotates pairs), bad scaling factors.
    public func validate(file: String) throws {
        func fail(_ detail: String) -> LLMuxError { .badCheckpoint(file: file, detail: detail) }
        let sizes: [(String, Int)] = [
            ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize), ("num_hidden_layers", layerCount),
            ("num_attention_heads", headCount), ("num_key_value_heads", kvHeadCount), ("head_dim", headDim),
            ("vocab_size", vocabSize), ("max_position_embeddings", maxPositionEmbeddings),
        ]
        for (key, value) in sizes where value <= 0 {
            throw fail("key '\(key)' must be positive, got \(value)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw fail("num_attention_heads (\(headCount)) is not divisible by num_key_value_heads (\(kvHeadCount))")
        }
        guard headDim % 2 == 0 else { throw fail("head_dim (\(headDim)) must be even for rotary embeddings") }
        guard rmsNormEps > 0, rmsNormEps.isFinite else { throw fail("rms_norm_eps must be positive, got \(rmsNormEps)") }
        guard ropeTheta > 0, ropeTheta.isFinite else { throw fail("rope_theta must be positive, got \(ropeTheta)") }
        if let slidingWindow, slidingWindow <= 0 { throw fail("sliding_window must be positive, got \(slidingWindow)") }
        switch ropeScaling {
        case .none: break
        case .linear(let factor):
            guard factor > 0 else { throw fail("rope scaling factor must be positive, got \(factor)") }
        case .llama3(let factor, let low, let high, let original):
            guard factor > 0, low > 0, high > low, original > 0 else {
                throw fail("llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0")
            }
        }
        if architecture == .qwen2 && !attentionBias { throw fail("Qwen2 always has q/k/v biases (attentionBias must be true)") }
        if architecture == .mistral && attentionBias { throw fail("Mistral has no attention biases") }
    }

    /// Number of weights in the checkpoint (embeddings, layers, final norm, LM head unless tied).
    public var parameterCount: Int {
        let qWidth = headCount * headDim
        let kvWidth = kvHeadCount * headDim
        var layer = 2 * hiddenSize                          // input and post-attention norms
        layer += hiddenSize * qWidth + 2 * hiddenSize * kvWidth + qWidth * hiddenSize
        if attentionBias { layer += qWidth + 2 * kvWidth }
        layer += 3 * hiddenSize * intermediateSize          // gate, up, down
        let embedding = vocabSize * hiddenSize
        return embedding + layerCount * layer + hiddenSize + (tieWordEmbeddings ? 0 : embedding)
    }

    /// RoPE inverse frequencies, `headDim / 2` of them, as transformers computes them
    /// (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
    /// `_compute_llama3_parameters` in `modeling_rope_utils.py`), but in Double before rounding.
    public func inverseFrequencies() -> [Float] {
        let dim = Double(headDim)
        let base = stride(from: 0, to: headDim, by: 2).map { 1.0 / pow(ropeTheta, Double($0) / dim) }
        switch ropeScaling {
        case .none:
            return base.map { Float($0) }
        case .linear(let factor):
            return base.map { Float($0 / factor) }
        case .llama3(let factor, let lowFreqFactor, let highFreqFactor, let original):
            let oldContext = Double(original)
            let lowFreqWavelen = oldContext / lowFreqFactor
            let highFreqWavelen = oldContext / highFreqFactor
            return base.map { inv -> Float in
                let wavelen = 2 * Double.pi / inv
                // Short wavelengths (high frequencies) are kept, long ones divided by the factor,
                // and the band between is interpolated smoothly.
                if wavelen < highFreqWavelen { return Float(inv) }
                if wavelen > lowFreqWavelen { return Float(inv / factor) }
                let smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return Float((1 - smooth) * inv / factor + smooth * inv)
            }
        }
    }
}

import LLMuxCore

/// What differs between the supported decoder-only architectures. All three follow the Llama
/// layout (pre-norm RMSNorm, rotary attention with grouped-query heads, SiLU-gated MLP) and the
/// Hugging Face weight names of `modeling_llama.py`; they differ in biases and config defaults.
protocol DecoderArchitecture {
    /// Whether q, k and v projections carry biases.
    static func hasQKVBias(_ config: ModelConfig) -> Bool
    /// Checks constraints the architecture adds to a config; throws with the offending key.
    static func validate(_ config: ModelConfig, file: String) throws
}

extension DecoderArchitecture {
    static func validate(_ config: ModelConfig, file: String) throws {}
}

extension Architecture {
    /// The behaviour of this architecture.
    var decoder: any DecoderArchitecture.Type {
        switch self {
        case .llama: return LlamaArchitecture.self
        case .mistral: return MistralArchitecture.self
        case .qwen2: return Qwen2Architecture.self
        }
    }
}

/// Hugging Face tensor names of one decoder layer.
struct LayerWeightNames {
    let prefix: String
    init(layer: Int) { prefix = "model.layers.\(layer)." }
    var inputNorm: String { prefix + "input_layernorm.weight" }
    var postAttentionNorm: String { prefix + "post_attention_layernorm.weight" }
    func attention(_ projection: String, _ kind: String = "weight") -> String { prefix + "self_attn.\(projection).\(kind)" }
    func mlp(_ projection: String) -> String { prefix + "mlp.\(projection).weight" }
}

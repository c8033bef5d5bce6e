import LLMuxCore

/// `LlamaForCausalLM` (Llama 2, Llama 3 and 3.x): optional `attention_bias`, RoPE scaling of type
/// `linear` or `llama3` (see `ModelConfig.inverseFrequencies`).
enum LlamaArchitecture: DecoderArchitecture {
    static func hasQKVBias(_ config: ModelConfig) -> Bool { config.attentionBias }
}

import LLMuxCore

/// `Qwen2ForCausalLM` (Qwen2, Qwen2.5): biases on the q, k and v projections, often tied
/// embeddings. Qwen2's sliding window is off unless `use_sliding_window` is set, which
/// `ModelConfig` reports as `slidingWindow`.
enum Qwen2Architecture: DecoderArchitecture {
    static func hasQKVBias(_ config: ModelConfig) -> Bool { true }

    static func validate(_ config: ModelConfig, file: String) throws {
        try MistralArchitecture.validate(config, file: file)
    }
}

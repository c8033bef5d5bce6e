import LLMuxCore

/// `MistralForCausalLM`: the Llama layout with an explicit `head_dim` (which may differ from
/// hidden size over heads) and no biases. Sliding-window attention is not implemented, so a
/// window shorter than the context is refused rather than silently ignored.
enum MistralArchitecture: DecoderArchitecture {
    static func hasQKVBias(_ config: ModelConfig) -> Bool { false }

    static func validate(_ config: ModelConfig, file: String) throws {
        if let window = config.slidingWindow, window < config.maxPositionEmbeddings {
            throw LLMuxError.badCheckpoint(
                file: file,
                detail: "sliding_window \(window) is shorter than max_position_embeddings \(config.maxPositionEmbeddings); sliding-window attention is not supported")
        }
    }
}

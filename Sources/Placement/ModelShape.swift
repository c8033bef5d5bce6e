/// The shape of a decoder-only transformer, which is all the cost model and the placement need
/// of a model: its weight bytes, its FLOPs per token and its KV bytes per token.
public struct ModelShape: Sendable, Codable, Equatable, Hashable {
    /// A name for the shape (a preset name such as `llama-7b`, or the model's own name).
    public var name: String
    /// Model width.
    public var hiddenSize: Int
    /// MLP width (gated MLP: three matrices of hidden × intermediate).
    public var intermediateSize: Int
    /// Decoder layers.
    public var layerCount: Int
    /// Query heads.
    public var headCount: Int
    /// Key/value heads.
    public var kvHeadCount: Int
    /// Size of one head.
    public var headDim: Int
    /// Vocabulary rows (embedding and LM head).
    public var vocabSize: Int
    /// Bytes of one stored weight (2 for bf16/fp16).
    public var bytesPerWeight: Int

    /// A shape from its sizes.
    public init(name: String, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int? = nil, vocabSize: Int, bytesPerWeight: Int = 2) {
        self.name = name
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / headCount
        self.vocabSize = vocabSize
        self.bytesPerWeight = bytesPerWeight
    }

    /// Matrix parameters of one layer (q, k, v, o and the gated MLP).
    public var layerParameters: Int {
        let query = headCount * headDim, kv = kvHeadCount * headDim
        return hiddenSize * (2 * query + 2 * kv) + 3 * hiddenSize * intermediateSize
    }

    /// Matrix parameters every token goes through (all layers plus the LM head).
    public var matrixParameters: Int { layerParameters * layerCount + vocabSize * hiddenSize }

    /// All parameters (layers, embedding and head; norms are negligible).
    public var parameterCount: Int { layerParameters * layerCount + 2 * vocabSize * hiddenSize }

    /// Bytes of the weights as stored.
    public var weightBytes: Double { Double(parameterCount * bytesPerWeight) }

    /// Bytes streamed by one forward pass (every matrix once; the embedding is a gather).
    public var streamedBytes: Double { Double(matrixParameters * bytesPerWeight) }

    /// Key plus value bytes of one token across all layers with `bytesPerElement`-byte elements.
    public func kvBytesPerToken(bytesPerElement: Int) -> Int { 2 * layerCount * kvHeadCount * headDim * bytesPerElement }

    /// Dense FLOPs of `tokens` tokens (2 per matrix parameter per token).
    public func denseFlops(tokens: Double) -> Double { 2 * Double(matrixParameters) * tokens }

    /// Attention FLOPs of `queries` query tokens each attending to `context` keys (QKᵀ and PV).
    public func attentionFlops(queries: Double, context: Double) -> Double {
        4 * Double(layerCount * headCount * headDim) * queries * context
    }

    /// LLaMA-1 shapes used by MuxServe's evaluation (7B, 13B, 30B, 65B), bf16.
    public static let builtIn: [String: ModelShape] = [
        "llama-7b": ModelShape(name: "llama-7b", hiddenSize: 4096, intermediateSize: 11008, layerCount: 32, headCount: 32,
                               kvHeadCount: 32, vocabSize: 32000),
        "llama-13b": ModelShape(name: "llama-13b", hiddenSize: 5120, intermediateSize: 13824, layerCount: 40, headCount: 40,
                                kvHeadCount: 40, vocabSize: 32000),
        "llama-30b": ModelShape(name: "llama-30b", hiddenSize: 6656, intermediateSize: 17920, layerCount: 60, headCount: 52,
                                kvHeadCount: 52, vocabSize: 32000),
        "llama-65b": ModelShape(name: "llama-65b", hiddenSize: 8192, intermediateSize: 22016, layerCount: 80, headCount: 64,
                                kvHeadCount: 64, vocabSize: 32000),
    ]
}

import Compute
import LLMuxCore

extension Checkpoint {
    /// The element type its weights are stored in: the token embedding's (a checkpoint written in
    /// one dtype stores them all so). Nil when it has no embedding matrix.
    public var storedWeightDType: DType? { tensorInfo("model.embed_tokens.weight")?.dtype }

    /// A line for the user when a backend that computes in `computed` would round this checkpoint's
    /// weights as it loads them (f32 or f16 weights on the bf16 CUDA backend), nil when it keeps
    /// them exactly. The backend's precision, not the checkpoint's dtype, decides the kernels, so
    /// without this a run meant to check f32 weights runs in bf16 without a word (BENCHMARKS
    /// round 12 found one that had).
    public func roundingNote(model: ModelID, computedIn computed: DType, deviceName: String) -> String? {
        guard computed != .f32, let stored = storedWeightDType, stored != computed else { return nil }
        return "note: \(model.name) stores \(stored.rawValue.lowercased()) weights; \(deviceName) computes in "
            + "\(computed.rawValue.lowercased()) and rounds them as it loads them (LLMUX_CUDA_PRECISION=f32 computes in f32)"
    }
}

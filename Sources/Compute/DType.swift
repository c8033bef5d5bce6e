/// Element types of stored weights and tensors.
public enum DType: String, Sendable, Equatable, CaseIterable {
    /// IEEE 754 single precision.
    case f32 = "F32"
    /// IEEE 754 half precision.
    case f16 = "F16"
    /// bfloat16 (the upper half of an f32).
    case bf16 = "BF16"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        }
    }

    /// The code the C kernels take (`LLMUX_F32`…).
    public var kernelCode: Int32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 2
        }
    }

    /// Parses a safetensors dtype string (`F32`, `F16`, `BF16`); other types are unsupported.
    public init?(safetensorsName: String) { self.init(rawValue: safetensorsName) }
}

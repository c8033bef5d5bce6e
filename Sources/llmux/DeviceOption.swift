import ArgumentParser
import Compute

/// `--device cpu|cuda[:N]`.
enum DeviceChoice: ExpressibleByArgument, Equatable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    init?(argument: String) {
        if argument == "cpu" { self = .cpu; return }
        if argument == "cuda" { self = .cuda(0); return }
        if argument.hasPrefix("cuda:"), let ordinal = Int(argument.dropFirst(5)), ordinal >= 0 { self = .cuda(ordinal); return }
        return nil
    }

    var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let ordinal): return "cuda:\(ordinal)"
        }
    }

    var isCUDA: Bool { if case .cuda = self { return true } else { return false } }

    /// Default token budget of one engine step: 512 on the CPU (a step of a few hundred tokens
    /// already keeps the cores busy), 8,192 on a GPU (a prompt chunk of 2,048 tokens left the
    /// Llama-3-8B products of an H100 prefill step at ~54 % of cuBLASLt's peak; vLLM and SGLang
    /// default to 8,192 batched tokens on 80 GB GPUs as well). Larger steps prefill faster and
    /// hold back the decode tokens that share them longer.
    var defaultTokensPerStep: Int { isCUDA ? 8192 : 512 }

    /// The backend for this device; CUDA failures (missing libraries, no GPU) become a
    /// `CommandFailure` that says what is missing.
    func makeBackend(threads: Int?, quiet: Bool = false) throws -> any ComputeBackend {
        switch self {
        case .cpu:
            return CPUBackend(threads: threads)
        case .cuda(let ordinal):
            do {
                let backend = try CUDABackend(ordinal: ordinal)
                if !quiet { report("\(backend.deviceName): \(backend.kernelReport)") }
                return backend
            } catch let error as CUDAError {
                throw CommandFailure("--device \(self) is unavailable: \(error.description)")
            }
        }
    }
}

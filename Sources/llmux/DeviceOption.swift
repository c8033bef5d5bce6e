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

import CLLMuxKernels

/// Host-side helpers over the C kernels for code outside the step (loading, tests, benchmarks).
public enum Kernels {
    /// Widens `count` stored elements to f32.
    public static func toFloat(_ source: UnsafeRawPointer, dtype: DType, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            llmux_convert_to_f32(source, dtype.kernelCode, buffer.baseAddress!, count)
            initialized = count
        }
    }

    /// Sets the number of kernel threads (the default is every online CPU).
    public static func setThreadCount(_ count: Int) { llmux_set_num_threads(Int32(count)) }
}

extension Kernels {
    /// Best-of-`repeats` multithreaded read bandwidth in GB/s over a buffer of `bytes` bytes.
    public static func measureReadBandwidth(bytes: Int, repeats: Int) -> Double {
        llmux_measure_read_bandwidth(bytes, Int32(repeats))
    }

    /// GFLOP/s of the LLMux matmul on `m × n × k` with weights of `dtype` (best of 5).
    public static func measureMatmul(m: Int, n: Int, k: Int, dtype: DType) -> Double {
        let x = [Float](repeating: 0.5, count: m * k)
        let weights = [UInt8](repeating: 0x3c, count: n * k * dtype.byteSize)
        var y = [Float](repeating: 0, count: m * n)
        var best = Double.infinity
        for _ in 0..<5 {
            let start = llmux_now_seconds()
            weights.withUnsafeBytes { w in
                llmux_matmul(x, Int32(k), w.baseAddress!, dtype.kernelCode, nil, &y, Int32(n), Int32(m), Int32(n), Int32(k))
            }
            best = min(best, llmux_now_seconds() - start)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}

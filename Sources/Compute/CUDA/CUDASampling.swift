import Foundation
import LLMuxCore

/// Sampling on the device: greedy rows (argmax, its log-probability and the requested top-k
/// log-probabilities) are computed by one kernel and only those numbers come back. Rows that
/// need random draws or penalties copy their logits row back and use the host `Sampler`.
extension CUDABackend {
    /// Most top log-probabilities the device kernel returns per row.
    static let maxDeviceLogprobs = 20

    public func sample(logits: Tensor, requests: [SampleRequest]) throws -> [SampledToken] {
        guard !requests.isEmpty else { return [] }
        try expect(logits.dtype == .f32 && logits.rows >= requests.count, "sample takes f32 logits")
        try context.makeCurrent()
        let onDevice = requests.map { $0.parameters.isGreedy && !$0.parameters.needsHistory
                                      && ($0.parameters.logprobs ?? 0) <= Self.maxDeviceLogprobs }
        let k = requests.map { $0.parameters.logprobs ?? 0 }.max()!.clamped(to: 0...Self.maxDeviceLogprobs)
        let width = k + 1
        let rows = requests.count
        var results = [SampledToken?](repeating: nil, count: rows)
        if onDevice.contains(true) {
            let bytes = rows * width * 4
            let buffer = try scratchForSampling(2 * bytes)
            let ids = buffer.deviceAddress, logprobs = ids + UInt64(bytes)
            try kernels.launch(.sample_rows, grid: (rows, 1, 1), block: 1024,
                               [.ptr(logits), .int(logits.rowStride), .int(logits.columns), .int(k), .pointer(ids), .pointer(logprobs)])
            if 2 * bytes <= context.readbackBytes {
                try context.copyToReadback(from: ids, byteCount: 2 * bytes)
                try context.synchronize()
            } else {
                throw CUDAError("sample: \(rows) rows exceed the read-back area")
            }
            let idValues = context.readback.assumingMemoryBound(to: Int32.self)
            let logprobValues = (context.readback + bytes).assumingMemoryBound(to: Float.self)
            for row in 0..<rows where onDevice[row] {
                let wanted = requests[row].parameters.logprobs ?? 0
                let top = (0..<wanted).map {
                    TokenLogprob(tokenID: TokenID(idValues[row * width + 1 + $0]), logprob: logprobValues[row * width + 1 + $0])
                }
                results[row] = SampledToken(tokenID: TokenID(idValues[row * width]), logprob: logprobValues[row * width], top: top)
            }
        }
        if onDevice.contains(false) {
            var host = [Float](repeating: 0, count: logits.columns)
            for row in 0..<rows where !onDevice[row] {
                try host.withUnsafeMutableBytes {
                    try context.copyToHost($0.baseAddress!, from: logits.rows(row, count: 1).deviceAddress, byteCount: logits.columns * 4)
                }
                results[row] = host.withUnsafeBufferPointer { Sampler.sample(logits: $0, request: requests[row]) }
            }
        }
        return results.map { $0! }
    }

    private func scratchForSampling(_ bytes: Int) throws -> DeviceBuffer {
        if let sampleScratch, sampleScratch.byteCount >= bytes { return sampleScratch }
        let buffer = try context.allocate(max(bytes, 1 << 16))
        sampleScratch = buffer
        return buffer
    }
}

/// Roofline measurements on the device, for `llmux bench engine --device cuda`.
extension CUDABackend {
    /// Device-to-device copy bandwidth in GB/s, counting bytes read and written (best of `repeats`).
    public func measureCopyBandwidth(bytes: Int, repeats: Int = 10) throws -> Double {
        try context.makeCurrent()
        let source = try context.allocate(bytes), destination = try context.allocate(bytes)
        try context.copy(destination.deviceAddress, from: source.deviceAddress, byteCount: bytes)
        try context.synchronize()
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = Date()
            try context.copy(destination.deviceAddress, from: source.deviceAddress, byteCount: bytes)
            try context.synchronize()
            best = min(best, Date().timeIntervalSince(start))
        }
        return 2 * Double(bytes) / best / 1e9
    }

    /// cuBLASLt bf16 TFLOP/s on `m × n × k` (bf16 in and out, fp32 accumulation; best of 5 runs of 10).
    public func measureMatmul(m: Int, n: Int, k: Int) throws -> Double {
        let x = try makeTensor(rows: m, columns: k, dtype: .bf16)
        let w = try makeTensor(rows: n, columns: k, dtype: .bf16)
        let out = try makeTensor(rows: m, columns: n, dtype: .bf16)
        try matmul(x, weight: w, bias: nil, out: out)
        try context.synchronize()
        var best = Double.infinity
        for _ in 0..<5 {
            let start = Date()
            for _ in 0..<10 { try matmul(x, weight: w, bias: nil, out: out) }
            try context.synchronize()
            best = min(best, Date().timeIntervalSince(start) / 10)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e12
    }

    /// Waits for all queued work (for timing).
    public func synchronize() throws { try context.synchronize() }
}

extension Comparable {
    func clamped(to range: ClosedRange<Self>) -> Self { min(max(self, range.lowerBound), range.upperBound) }
}

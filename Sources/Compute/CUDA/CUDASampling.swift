import Foundation
import LLMuxCore

/// Sampling on the device: greedy rows (argmax, its log-probability and the requested top-k
/// log-probabilities) are computed by one kernel, rows that sample with a temperature (top-k,
/// top-p, min-p, seeds) by `sample_draw`, and only token ids and log-probabilities come back.
/// A drawn row's top log-probabilities come from the greedy kernel, which runs first. Rows with
/// penalties (they need the history) copy their logits row back and use the host `Sampler`, as do
/// all draws with `LLMUX_CUDA_DRAWS=0`.
extension CUDABackend {
    /// Most top log-probabilities the device kernel returns per row.
    static let maxDeviceLogprobs = 20

    /// `enqueueSample`, then a wait: blocks the calling thread until the tokens are on the host.
    public func sample(logits: Tensor, requests: [SampleRequest]) throws -> [SampledToken] {
        let pending = try enqueueSample(logits: logits, requests: requests)
        try pending.wait()
        return try pending.results()
    }

    /// Queues the sampling kernel and the copies of its results (and of the logits rows that the
    /// host samples) to pinned host memory on the selected stream, then an event after them.
    public func enqueueSample(logits: Tensor, requests: [SampleRequest]) throws -> any PendingSamples {
        try expect(logits.dtype == .f32 && logits.rows >= requests.count, "sample takes f32 logits")
        try context.makeCurrent()
        let drawn = requests.map { deviceDraws && !$0.parameters.isGreedy && !$0.parameters.needsHistory
                                   && ($0.parameters.logprobs ?? 0) <= Self.maxDeviceLogprobs }
        let onDevice = requests.indices.map { index in
            drawn[index] || requests[index].parameters.isGreedy && !requests[index].parameters.needsHistory
                && (requests[index].parameters.logprobs ?? 0) <= Self.maxDeviceLogprobs
        }
        let k = (requests.map { $0.parameters.logprobs ?? 0 }.max() ?? 0).clamped(to: 0...Self.maxDeviceLogprobs)
        let width = k + 1
        let rows = requests.count
        let deviceBytes = rows * width * 4
        let hostRows = onDevice.indices.filter { !onDevice[$0] }
        let rowBytes = logits.columns * 4
        let host = try pinned.take(2 * deviceBytes + hostRows.count * rowBytes)
        if onDevice.contains(true) {
            let buffer = try scratchForSampling(2 * deviceBytes)
            let ids = buffer.deviceAddress, logprobs = ids + UInt64(deviceBytes)
            if k == 0 {
                // Argmax and its log-probability only: the vocabulary split over many blocks.
                let chunks = max(1, min(64, logits.columns / 2048))
                let partial = try scratchForSampling(rows * chunks * 12, partial: true)
                try kernels.launch(.argmax_partial, grid: (rows, chunks, 1), block: 256,
                                   [.ptr(logits), .int(logits.rowStride), .int(logits.columns), .pointer(partial.deviceAddress)])
                try kernels.launch(.argmax_combine, grid: (rows, 1, 1), block: 32,
                                   [.pointer(partial.deviceAddress), .int(chunks), .pointer(ids), .pointer(logprobs)])
            } else {
                try kernels.launch(.sample_rows, grid: (rows, 1, 1), block: 1024,
                                   [.ptr(logits), .int(logits.rowStride), .int(logits.columns), .int(k), .pointer(ids), .pointer(logprobs)])
            }
            if drawn.contains(true) {
                try launchDraws(logits: logits, requests: requests, drawn: drawn, ids: ids, logprobs: logprobs, width: width)
            }
            try context.driver.check(context.driver.cuMemcpyDtoHAsync(host.address, ids, 2 * deviceBytes, context.stream),
                                     "cuMemcpyDtoHAsync(\(2 * deviceBytes))")
        }
        for (index, row) in hostRows.enumerated() {
            try context.driver.check(context.driver.cuMemcpyDtoHAsync(host.address + 2 * deviceBytes + index * rowBytes,
                                                                      logits.rows(row, count: 1).deviceAddress, rowBytes, context.stream),
                                     "cuMemcpyDtoHAsync(\(rowBytes))")
        }
        let event = try events.take()
        try context.driver.check(context.driver.cuEventRecord(event, context.stream), "cuEventRecord")
        // The job's last use of what it staged is queued: that part of the upload ring is free once it ends.
        try context.fenceStaging()
        return CUDAPendingSamples(backend: self, event: event, host: host, requests: requests, onDevice: onDevice, width: width,
                              columns: logits.columns)
    }

    /// Queues `sample_draw` for the rows marked in `drawn`: it overwrites the first entry of their
    /// `ids`/`logprobs` (the greedy kernel before it, in stream order, wrote the argmax there and
    /// the top log-probabilities after it).
    private func launchDraws(logits: Tensor, requests: [SampleRequest], drawn: [Bool], ids: UInt64, logprobs: UInt64,
                             width: Int) throws {
        var parameters: [Int32] = []
        for (row, request) in requests.enumerated() where drawn[row] {
            let settings = request.parameters
            let seed = settings.seed ?? 0, counter = UInt64(request.generatedCount)
            let minP = settings.minP > 0 ? Float(log(Double(settings.minP))) : -Float.infinity
            parameters += [Int32(row), Int32(clamping: settings.topK), Int32(bitPattern: (1 / settings.temperature).bitPattern),
                           Int32(bitPattern: settings.topP.bitPattern), Int32(bitPattern: minP.bitPattern), 0,
                           Int32(bitPattern: UInt32(truncatingIfNeeded: seed)), Int32(bitPattern: UInt32(truncatingIfNeeded: seed >> 32)),
                           Int32(bitPattern: UInt32(truncatingIfNeeded: counter)),
                           Int32(bitPattern: UInt32(truncatingIfNeeded: counter >> 32))]
        }
        let table = try upload(parameters)
        try kernels.launch(.sample_draw, grid: (parameters.count / 10, 1, 1), block: 1024,
                           [.ptr(logits), .int(logits.rowStride), .int(logits.columns), .ptr(table), .pointer(ids), .pointer(logprobs),
                            .int(width)])
    }

    /// The selected stream's sampling scratch, or (`partial`) a second buffer for per-chunk partials.
    private func scratchForSampling(_ bytes: Int, partial: Bool = false) throws -> DeviceBuffer {
        let existing = partial ? current.samplePartials : current.sampleScratch
        if let existing, existing.byteCount >= bytes { return existing }
        let buffer = try context.allocate(max(bytes, 1 << 16))
        if partial { current.samplePartials = buffer } else { current.sampleScratch = buffer }
        return buffer
    }
}

/// Sampled tokens on their way to the host: the results of `enqueueSample`, readable once the
/// device has reached the event recorded after them.
final class CUDAPendingSamples: PendingSamples {
    private let backend: CUDABackend
    private var event: OpaquePointer?
    private var host: PinnedBuffer?
    private let requests: [SampleRequest]
    private let onDevice: [Bool]
    private let width: Int
    private let columns: Int

    init(backend: CUDABackend, event: OpaquePointer?, host: PinnedBuffer, requests: [SampleRequest], onDevice: [Bool],
         width: Int, columns: Int) {
        self.backend = backend
        self.event = event
        self.host = host
        self.requests = requests
        self.onDevice = onDevice
        self.width = width
        self.columns = columns
    }

    /// Whether the device has finished the job's work up to the samples' copy.
    func isReady() throws -> Bool {
        guard let event else { return true }
        let driver = backend.context.driver
        let status = driver.cuEventQuery(event)
        if status == 600 { return false }  // CUDA_ERROR_NOT_READY
        try driver.check(status, "cuEventQuery")
        return true
    }

    /// Blocks until the samples are on the host.
    func wait() throws {
        guard let event else { return }
        try backend.context.driver.check(backend.context.driver.cuEventSynchronize(event), "cuEventSynchronize")
    }

    /// The sampled tokens, one per request (call after `isReady` or `wait`); the host samples the
    /// rows that need random draws or penalties here.
    func results() throws -> [SampledToken] {
        guard let host else { throw CUDAError("sample results were already read") }
        defer { release() }
        let rows = requests.count
        let deviceBytes = rows * width * 4
        let ids = host.address.assumingMemoryBound(to: Int32.self)
        let logprobs = (host.address + deviceBytes).assumingMemoryBound(to: Float.self)
        var hostIndex = 0
        return (0..<rows).map { row in
            if onDevice[row] {
                let wanted = requests[row].parameters.logprobs ?? 0
                let top = (0..<wanted).map {
                    TokenLogprob(tokenID: TokenID(ids[row * width + 1 + $0]), logprob: logprobs[row * width + 1 + $0])
                }
                return SampledToken(tokenID: TokenID(ids[row * width]), logprob: logprobs[row * width], top: top)
            }
            let start = (host.address + 2 * deviceBytes + hostIndex * columns * 4).assumingMemoryBound(to: Float.self)
            hostIndex += 1
            return Sampler.sample(logits: UnsafeBufferPointer(start: start, count: columns), request: requests[row])
        }
    }

    private func release() {
        if let host { backend.pinned.give(host) }
        if let event { backend.events.give(event) }
        host = nil
        event = nil
    }

    deinit {
        // Unread results: the device may still write into the memory, so wait before reusing it.
        if event != nil { try? wait() }
        release()
    }
}

/// Page-locked host memory for results copied back, reused by size class.
final class PinnedBuffer {
    let address: UnsafeMutableRawPointer
    let byteCount: Int
    init(address: UnsafeMutableRawPointer, byteCount: Int) {
        self.address = address
        self.byteCount = byteCount
    }
}

/// Free lists of pinned host buffers (powers of two from 64 KiB) and of events.
final class PinnedPool {
    private let driver: CUDADriver
    private var free: [Int: [PinnedBuffer]] = [:]
    init(driver: CUDADriver) { self.driver = driver }

    func take(_ bytes: Int) throws -> PinnedBuffer {
        let size = max(1 << 16, 1 << (Int.bitWidth - (max(bytes, 1) - 1).leadingZeroBitCount))
        if let buffer = free[size]?.popLast() { return buffer }
        var address: UnsafeMutableRawPointer?
        try driver.check(driver.cuMemAllocHost(&address, size), "cuMemAllocHost(\(size))")
        return PinnedBuffer(address: address!, byteCount: size)
    }

    func give(_ buffer: PinnedBuffer) { free[buffer.byteCount, default: []].append(buffer) }
}

/// Reused CUDA events (timing off: they only mark progress).
final class EventPool {
    private let driver: CUDADriver
    private var free: [OpaquePointer?] = []
    init(driver: CUDADriver) { self.driver = driver }

    func take() throws -> OpaquePointer? {
        if let event = free.popLast() { return event }
        var event: OpaquePointer?
        // CU_EVENT_DISABLE_TIMING = 2
        try driver.check(driver.cuEventCreate(&event, 2), "cuEventCreate")
        return event
    }

    func give(_ event: OpaquePointer?) { free.append(event) }
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

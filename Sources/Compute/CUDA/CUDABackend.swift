import Foundation
import LLMuxCore

/// Element type of a CUDA backend's weights, activations and KV pages.
public enum CUDAPrecision: String, Sendable, CaseIterable {
    /// bf16 everywhere but the residual stream and logits (the serving precision).
    case bf16
    /// f32 everywhere, products in full fp32 (no TF32): a reference for checking the kernels
    /// against fp32 transformers, at twice the memory and a fraction of the speed.
    case f32

    /// `LLMUX_CUDA_PRECISION` (bf16 when unset).
    public static func fromEnvironment() throws -> CUDAPrecision {
        guard let value = ProcessInfo.processInfo.environment["LLMUX_CUDA_PRECISION"], !value.isEmpty else { return .bf16 }
        guard let precision = CUDAPrecision(rawValue: value.lowercased()) else {
            throw CUDAError("LLMUX_CUDA_PRECISION must be bf16 or f32, not '\(value)'")
        }
        return precision
    }

    var dtype: DType { self == .bf16 ? .bf16 : .f32 }
}

/// The CUDA backend: bf16 weights and activations on one GPU (f32 residual stream and logits),
/// kernels compiled at run time by NVRTC, matrix products through cuBLASLt with fp32
/// accumulation; `CUDAPrecision.f32` keeps everything in f32. CUDA's libraries are opened with
/// `dlopen` when the backend is created, so the package builds and runs without them.
public final class CUDABackend: ComputeBackend {
    /// The element type of weights, activations and KV pages.
    public let precision: CUDAPrecision
    let context: CUDAContext
    let kernels: CUDAKernels
    let matmuls: MatmulEngine
    /// SM partitions (green contexts) and their streams.
    let partitions: CUDAPartitions
    /// The stream work goes to now, with its scratch (the main stream unless a job selected another).
    var current: StreamSlot
    /// The main stream's slot.
    let mainSlot: StreamSlot
    /// Pinned host memory and events for results on their way back.
    let pinned: PinnedPool
    let events: EventPool
    /// Product shapes (on a partition size) that no cuBLASLt algorithm launches on; they run on the main stream.
    var matmulsOffPartition: Set<MatmulKey> = []
    /// Bytes of cuBLASLt workspace per stream.
    let matmulWorkspaceBytes = 32 << 20
    /// Forces the per-token attention kernel for prefill too (cross-checks; `LLMUX_CUDA_ATTENTION=decode`).
    let decodeAttentionOnly = ProcessInfo.processInfo.environment["LLMUX_CUDA_ATTENTION"] == "decode"
    /// The CUDA-core (f32) prefill attention instead of the tensor-core one (`LLMUX_CUDA_ATTENTION=simt`).
    let simtPrefillAttention = ProcessInfo.processInfo.environment["LLMUX_CUDA_ATTENTION"] == "simt"
    /// `LLMUX_CUDA_ATTENTION=simt-decode`: decode attention on CUDA cores (`attn_decode`) instead of
    /// tensor cores (`attn_decode_tc*`), for comparison.
    let simtDecodeAttention = ProcessInfo.processInfo.environment["LLMUX_CUDA_ATTENTION"] == "simt-decode"
    /// Decode steps as CUDA graphs (`LLMUX_CUDA_GRAPHS=0` turns them off).
    let graphsEnabled = ProcessInfo.processInfo.environment["LLMUX_CUDA_GRAPHS"] != "0"
    /// The GEMV kernels instead of cuBLASLt for products of at most 4 rows (`LLMUX_CUDA_GEMV=0` turns
    /// them off): they read the weights at 91 % of the plain read rate where cuBLASLt reaches 84 %.
    let useGEMV = ProcessInfo.processInfo.environment["LLMUX_CUDA_GEMV"] != "0"
    /// Rows that sample with a temperature are drawn on the device (`LLMUX_CUDA_DRAWS=0`: on the
    /// host, with their logits copied back).
    let deviceDraws = ProcessInfo.processInfo.environment["LLMUX_CUDA_DRAWS"] != "0"
    /// `LLMUX_CUDA_VECTOR=0`: the scalar `silu_mul` (the vector one loads 8 values at a time).
    let vectorSiluMul = ProcessInfo.processInfo.environment["LLMUX_CUDA_VECTOR"] != "0"
    /// Fused QKV and gate/up weights (`LLMUX_CUDA_FUSE=0` keeps them apart).
    let fuseWeights = ProcessInfo.processInfo.environment["LLMUX_CUDA_FUSE"] != "0"
    /// While a graph is recorded: scratch must not be shared with other graphs.
    var capturing = false
    var captureRetained: [DeviceBuffer] = []
    /// A step timer waiting for the step's first device work (`llmux bench engine --trace`).
    var armedTimer: GPUStepTimer?
    /// Graphs recorded so far (for reports).
    public internal(set) var graphCount = 0

    /// Opens the driver, cuBLASLt and NVRTC, and prepares GPU `ordinal`. The error says which
    /// library or call failed.
    public init(ordinal: Int = 0, precision: CUDAPrecision? = nil) throws {
        self.precision = try precision ?? CUDAPrecision.fromEnvironment()
        context = try CUDAContext(ordinal: ordinal)
        let lt = try CUBLASLt()
        kernels = try CUDAKernels(context: context, precision: self.precision)
        matmuls = try MatmulEngine(lt: lt, workspaceBytes: matmulWorkspaceBytes)
        partitions = CUDAPartitions(context: context)
        pinned = PinnedPool(driver: context.driver)
        events = EventPool(driver: context.driver)
        mainSlot = StreamSlot(stream: context.stream, key: 0)
        current = mainSlot
    }

    /// "cuda:N name (sm_XY, N SMs)", from the driver's device attributes.
    public var deviceName: String {
        "cuda:\(context.ordinal) \(context.name) (sm_\(context.computeCapability), \(context.multiprocessorCount) SMs)"
    }
    /// A line on how the kernels were obtained, for start-up logs.
    public var kernelReport: String {
        String(format: "%@ kernels %@ in %.2f s (%@)", precision.rawValue,
               kernels.fromCache ? "loaded from the disk cache" : "compiled by NVRTC", kernels.loadSeconds, context.driver.library.name)
    }
    /// bf16, or f32 with `CUDAPrecision.f32`; the residual stream and logits are f32 either way.
    public var activationDType: DType { precision.dtype }
    /// The activation type too: `kv_write` copies keys and values into the pages without conversion.
    public var kvCacheDType: DType { precision.dtype }
    /// The device's SM count from the driver: what green-context partitions are carved from.
    public var multiprocessorCount: Int { context.multiprocessorCount }
    /// cuBLASLt plans made (one heuristic query each) and the host seconds they took so far.
    public var matmulPlanning: (plans: Int, seconds: Double) { (matmuls.planCount, matmuls.planningSeconds) }
    /// Allocations, frees, waits, kernel launches and cuBLASLt calls made so far and their host
    /// time (counted only with `LLMUX_TRACE_JOBS=1`).
    public var hostStalls: HostStalls { context.stalls.totals }

    /// Free device memory as `cuMemGetInfo` reports it (other processes' allocations count against it).
    public func freeMemoryBytes() throws -> Int? { try context.memoryInfo().free }

    /// A new device allocation, zeroed by a memset queued on the selected stream; any dtype is accepted.
    public func makeTensor(rows: Int, columns: Int, dtype: DType) throws -> Tensor {
        try context.makeCurrent()
        let bytes = rows * columns * dtype.byteSize
        let buffer = try context.allocate(bytes)
        try context.zero(buffer.deviceAddress, byteCount: max(bytes, 1))
        return Tensor(buffer: buffer, dtype: dtype, rows: rows, columns: columns)
    }

    /// Copies stored bytes to the device in the backend's precision (f32 and f16 are rounded to
    /// bf16 on the host; in f32 every stored type is widened exactly).
    public func makeWeight(address: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, owner: AnyObject?) throws -> Tensor {
        try context.makeCurrent()
        let count = rows * columns
        let target = precision.dtype
        let buffer = try context.allocate(count * target.byteSize)
        if dtype == target {
            try context.copyToDevice(buffer.deviceAddress, from: address, byteCount: count * target.byteSize)
        } else {
            let chunk = 1 << 22
            var start = 0
            while start < count {
                let n = min(chunk, count - start)
                let floats = Kernels.toFloat(address + start * dtype.byteSize, dtype: dtype, count: n)
                let destination = buffer.deviceAddress + UInt64(start * target.byteSize)
                if target == .f32 {
                    try floats.withUnsafeBytes { try context.copyToDevice(destination, from: $0.baseAddress!, byteCount: n * 4) }
                } else {
                    let converted = floats.map(BFloat16Bits.round)
                    try converted.withUnsafeBytes { try context.copyToDevice(destination, from: $0.baseAddress!, byteCount: n * 2) }
                }
                start += n
            }
        }
        return Tensor(buffer: buffer, dtype: target, rows: rows, columns: columns)
    }

    /// Stream-ordered copy through the pinned upload ring: the buffer is valid for the work the current job queues.
    public func upload(_ values: [Int32]) throws -> IntTensor {
        try context.makeCurrent()
        try markTimerStart()
        let buffer = try values.withUnsafeBytes { try context.stage($0) }
        return IntTensor(buffer: buffer, count: values.count)
    }

    /// A new f32 tensor filled by a synchronous copy (load-time values such as biases and rotary frequencies).
    /// Not through `makeTensor`: its zeroing memset is queued on the non-blocking selected stream,
    /// which a synchronous copy is not ordered after, so it could land after the values.
    public func upload(floats values: [Float]) throws -> Tensor {
        try context.makeCurrent()
        let buffer = try context.allocate(values.count * 4)
        if !values.isEmpty {
            try values.withUnsafeBytes { try context.copyToDevice(buffer.deviceAddress, from: $0.baseAddress!, byteCount: $0.count) }
        }
        return Tensor(buffer: buffer, dtype: .f32, rows: 1, columns: values.count)
    }

    /// One block per token: rows of a table in the activation type, written as f32 (the residual stream).
    public func embedding(ids: IntTensor, table: Tensor, out: Tensor) throws {
        try expect(table.dtype == activationDType && out.dtype == .f32 && out.rowStride == out.columns, "embedding types")
        try kernels.launch(.embedding, grid: (ids.count, 1, 1), block: 256, [.ptr(ids), .ptr(table), .ptr(out), .int(table.columns)])
    }

    /// GEMV kernels for at most 4 aligned bf16 rows, else cuBLASLt (on the main stream where no algorithm fits the
    /// partition's SMs), then `bias_add`; queued on the selected stream.
    public func matmul(_ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor) throws {
        try expect(x.columns == weight.columns && out.columns == weight.rows && out.rows == x.rows,
                   "matmul shapes: x \(x.rows)x\(x.columns), w \(weight.rows)x\(weight.columns), out \(out.rows)x\(out.columns)")
        guard x.rows > 0 else { return }
        let key = MatmulKey(m: x.rows, n: weight.rows, k: x.columns, ldx: x.rowStride, ldw: weight.rowStride, ldout: out.rowStride,
                            xType: CUBLASLt.DataType(x.dtype).rawValue, wType: CUBLASLt.DataType(weight.dtype).rawValue,
                            outType: CUBLASLt.DataType(out.dtype).rawValue, smCount: current.smCount)
        let aligned = { (tensor: Tensor) in tensor.deviceAddress % 16 == 0 && tensor.rowStride % 8 == 0 }
        if useGEMV && precision == .bf16 && x.rows <= 4 && x.dtype == .bf16 && weight.dtype == .bf16 && out.dtype != .f16 && x.columns % 8 == 0
            && aligned(x) && aligned(weight) {
            try kernels.launch(CUDAKernels.gemv(rows: x.rows), grid: ((weight.rows + 7) / 8, 1, 1), block: 256,
                               [.ptr(x), .int(x.rowStride), .ptr(weight), .int(weight.rowStride), .ptr(out), .int(out.rowStride),
                                .int(out.dtype == .f32 ? 1 : 0), .int(weight.rows), .int(x.columns)])
        } else {
            if current.smCount > 0 && matmulsOffPartition.contains(key) {
                try matmulOnMainStream(x, weight: weight, out: out, key: key)
            } else {
                do {
                    let workspace = try workspace(of: current).deviceAddress
                    try context.stalls.measure(.matmul) {
                        try matmuls.run(x: x.deviceAddress, w: weight.deviceAddress, out: out.deviceAddress, key: key,
                                        workspace: workspace, stream: context.stream)
                    }
                } catch let error as CUDAError where current.smCount > 0 && !capturing {
                    // No cuBLASLt algorithm for this shape launches on so few SMs (seen on 8-SM green
                    // contexts of an H100): run it on the whole device, ordered with the job's stream.
                    FileHandle.standardError.write(Data(
                        "cuBLASLt: \(error.description); running \(key.m)x\(key.n)x\(key.k) on the whole device instead\n".utf8))
                    matmulsOffPartition.insert(key)
                    try matmulOnMainStream(x, weight: weight, out: out, key: key)
                }
            }
        }
        if let bias {
            try expect(bias.dtype == .f32 && out.dtype == activationDType, "bias types")
            try kernels.launch(.bias_add, grid: (out.rows, 1, 1), block: 256, [.ptr(out), .int(out.rowStride), .ptr(bias), .int(out.columns)])
        }
    }

    /// Reads the f32 residual stream and writes the activation type; one block per row, on the selected stream.
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) throws {
        try expect(x.dtype == .f32 && x.rowStride == x.columns && out.dtype == activationDType, "rmsNorm takes the f32 residual")
        try kernels.launch(.add_rmsnorm, grid: (x.rows, 1, 1), block: normThreads(x.columns),
                           [.ptr(x), .pointer(0), .int(0), .ptr(weight), .ptr(out), .int(out.rowStride), .int(x.columns), .float(eps)])
    }

    /// One `add_rmsnorm` kernel: f32 residual, `x` and `out` in the activation type; one block per row.
    public func addRMSNorm(residual: Tensor, _ x: Tensor, weight: Tensor, eps: Float, out: Tensor) throws {
        try expect(residual.dtype == .f32 && residual.rowStride == residual.columns && x.dtype == activationDType
                   && out.dtype == activationDType,
                   "addRMSNorm types")
        try kernels.launch(.add_rmsnorm, grid: (x.rows, 1, 1), block: normThreads(x.columns),
                           [.ptr(residual), .ptr(x), .int(x.rowStride), .ptr(weight), .ptr(out), .int(out.rowStride),
                            .int(x.columns), .float(eps)])
    }

    /// In place, one block per (token, head); head dimensions up to 2,048.
    public func rope(_ x: Tensor, positions: IntTensor, heads: Int, headDim: Int, inverseFrequencies: Tensor) throws {
        try expect(x.dtype == activationDType && headDim % 2 == 0 && headDim / 2 <= 1024, "rope types")
        try kernels.launch(.rope, grid: (x.rows, heads, 1), block: max(32, (headDim / 2 + 31) / 32 * 32),
                           [.ptr(x), .int(x.rowStride), .ptr(positions), .int(headDim), .ptr(inverseFrequencies)])
    }

    /// The 8-wide vector kernel when sizes and addresses allow it (`LLMUX_CUDA_VECTOR`), else the scalar one.
    public func siluMul(gateUp: Tensor, out: Tensor) throws {
        try expect(gateUp.columns == 2 * out.columns && out.rowStride == out.columns, "siluMul shapes")
        let vectorBytes = 8 * out.dtype.byteSize
        if vectorSiluMul && out.columns % 8 == 0 && gateUp.rowStride % 8 == 0 && gateUp.dtype == out.dtype
            && gateUp.deviceAddress % UInt64(vectorBytes) == 0 && out.deviceAddress % UInt64(vectorBytes) == 0 {
            try kernels.launch(.silu_mul_v8, grid: (min((out.columns / 8 + 255) / 256, 64), min(out.rows, 65535), 1), block: 256,
                               [.ptr(gateUp), .int(gateUp.rowStride), .ptr(out), .int(out.columns), .int(out.rows)])
            return
        }
        let columnBlocks = min((out.columns + 255) / 256, 64)
        try kernels.launch(.silu_mul, grid: (columnBlocks, min(out.rows, 65535), 1), block: 256,
                           [.ptr(gateUp), .int(gateUp.rowStride), .ptr(out), .int(out.columns), .int(out.rows)])
    }

    /// One block per token, negative slots (padding) skipped; keys, values and pool all in the activation type.
    public func writeKV(keys: Tensor, values: Tensor, layer: PagedKVLayer, slots: IntTensor, kvHeads: Int, headDim: Int) throws {
        try expect(keys.rowStride == values.rowStride && layer.dtype == activationDType && keys.dtype == activationDType,
                   "writeKV types")
        try kernels.launch(.kv_write, grid: (slots.count, 1, 1), block: 128,
                           [.ptr(keys), .ptr(values), .int(keys.rowStride), .pointer(layer.deviceKeys), .pointer(layer.deviceValues),
                            .ptr(slots), .int(kvHeads * headDim), .int(layer.tokensPerPage), .int64(Int64(layer.pageStride))])
    }

    /// Fused into one kernel (`rope_kv_write`): each rotated key head is stored at its slot without a second pass.
    public func ropeWriteKV(qkv: Tensor, queryHeads: Int, kvHeads: Int, headDim: Int, positions: IntTensor,
                            inverseFrequencies: Tensor, layer: PagedKVLayer, slots: IntTensor) throws {
        try expect(qkv.dtype == activationDType && layer.dtype == activationDType && headDim % 2 == 0 && headDim <= 2048
                   && qkv.columns >= (queryHeads + 2 * kvHeads) * headDim, "ropeWriteKV types")
        try kernels.launch(.rope_kv_write, grid: (qkv.rows, queryHeads + kvHeads, 1), block: max(32, (headDim / 2 + 31) / 32 * 32),
                           [.ptr(qkv), .int(qkv.rowStride), .ptr(positions), .int(queryHeads), .int(kvHeads), .int(headDim),
                            .ptr(inverseFrequencies), .pointer(layer.deviceKeys), .pointer(layer.deviceValues), .ptr(slots),
                            .int(layer.tokensPerPage), .int64(Int64(layer.pageStride))])
    }

    /// Stages the row indices through the upload ring, then `gather_rows` copies one row per block.
    public func gatherRows(_ x: Tensor, rows: [Int], out: Tensor) throws {
        guard !rows.isEmpty else { return }
        try expect(x.dtype == out.dtype && x.dtype == activationDType, "gatherRows types")
        let indices = try upload(rows.map { Int32($0) })
        try kernels.launch(.gather_rows, grid: (rows.count, 1, 1), block: 256,
                           [.ptr(x), .int(x.rowStride), .ptr(indices), .ptr(out), .int(out.rowStride), .int(x.columns)])
    }

    /// The slot's cuBLASLt workspace, allocated on first use.
    private func workspace(of slot: StreamSlot) throws -> DeviceBuffer {
        if let existing = slot.matmulWorkspace { return existing }
        let buffer = try context.allocate(matmulWorkspaceBytes)
        slot.matmulWorkspace = buffer
        return buffer
    }

    /// A product of the selected stream's job run on the main stream (whole device): the main
    /// stream waits for the job's work so far, and the job's stream waits for the product.
    private func matmulOnMainStream(_ x: Tensor, weight: Tensor, out: Tensor, key: MatmulKey) throws {
        let driver = context.driver
        let jobStream = context.stream
        var wholeDevice = key
        wholeDevice.smCount = 0
        let before = try events.take(), after = try events.take()
        defer { events.give(before); events.give(after) }
        try driver.check(driver.cuEventRecord(before, jobStream), "cuEventRecord")
        try driver.check(driver.cuStreamWaitEvent(mainSlot.stream, before, 0), "cuStreamWaitEvent")
        try matmuls.run(x: x.deviceAddress, w: weight.deviceAddress, out: out.deviceAddress, key: wholeDevice,
                        workspace: try workspace(of: mainSlot).deviceAddress, stream: mainSlot.stream)
        try driver.check(driver.cuEventRecord(after, mainSlot.stream), "cuEventRecord")
        try driver.check(driver.cuStreamWaitEvent(jobStream, after, 0), "cuStreamWaitEvent")
        current.usesMainStream = true
    }

    /// Threads of a row-norm block for `columns` columns.
    /// (Four values a thread: measured faster than eight on an H100 at 4,096 columns, 5.3 against 6.7 us.)
    private func normThreads(_ columns: Int) -> Int { min(1024, max(32, (columns / 4 + 31) / 32 * 32)) }

    /// Device scratch of at least `bytes`, reused (stream order keeps uses apart).
    func scratch(_ bytes: Int) throws -> DeviceBuffer {
        if capturing {
            let buffer = try context.allocate(max(bytes, 256))
            captureRetained.append(buffer)
            return buffer
        }
        if let existing = current.attentionScratch, existing.byteCount >= bytes { return existing }
        current.attentionScratch = nil
        let buffer = try context.allocate(max(bytes, 1 << 20))
        current.attentionScratch = buffer
        return buffer
    }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw CUDAError("CUDA backend: unsupported \(message())") }
    }
}

extension PagedKVLayer {
    var deviceKeys: UInt64 { UInt64(UInt(bitPattern: keys)) }
    var deviceValues: UInt64 { UInt64(UInt(bitPattern: values)) }
}

/// Round-to-nearest-even f32 → bf16 on the host.
enum BFloat16Bits {
    static func round(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        return UInt16((bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16)
    }
}

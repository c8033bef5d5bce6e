import CLLMuxKernels
import Foundation
import LLMuxCore

/// The CPU backend: host memory and the hand-written C kernels (AVX2/FMA when the CPU has them),
/// computing in fp32 whatever the stored weight type.
public final class CPUBackend: ComputeBackend {
    /// Whether q/k/v and gate/up are copied into one matrix each at load (fewer, larger decode
    /// matmuls) instead of being read in place from the mapped checkpoint.
    public let fusesProjections: Bool
    /// SMs the backend pretends to have (0: none, the usual CPU); see `CPUBackend+Partitions`.
    public let emulatedMultiprocessors: Int

    /// A backend using `threads` worker threads (nil: every online CPU). `fuseProjections`
    /// defaults to `LLMUX_CPU_FUSE=1` in the environment (off: weights are used in place).
    /// `emulatedMultiprocessors` > 0 makes it accept SM partitions (tests of the asynchronous path).
    public init(threads: Int? = nil, fuseProjections: Bool? = nil, emulatedMultiprocessors: Int = 0) {
        if let threads { llmux_set_num_threads(Int32(threads)) }
        fusesProjections = fuseProjections ?? (ProcessInfo.processInfo.environment["LLMUX_CPU_FUSE"] == "1")
        self.emulatedMultiprocessors = emulatedMultiprocessors
    }

    /// With `fusesProjections`, the parts copied one after the other into one owned matrix in
    /// their stored dtype; otherwise nil (the decoder keeps separate matmuls over the mapping).
    public func concatenateRows(_ parts: [Tensor]) throws -> Tensor? {
        guard fusesProjections, let first = parts.first,
              parts.allSatisfy({ $0.dtype == first.dtype && $0.columns == first.columns && $0.rowStride == $0.columns }) else {
            return nil
        }
        let rows = parts.reduce(0) { $0 + $1.rows }
        let rowBytes = first.columns * first.dtype.byteSize
        let buffer = DeviceBuffer(allocating: rows * rowBytes)
        var offset = 0
        for part in parts {
            (buffer.address + offset).copyMemory(from: part.address, byteCount: part.rows * rowBytes)
            offset += part.rows * rowBytes
        }
        return Tensor(buffer: buffer, dtype: first.dtype, rows: rows, columns: first.columns)
    }

    /// "cpu (N threads, avx2)" or "cpu (N threads, scalar)".
    public var deviceName: String {
        "cpu (\(llmux_get_num_threads()) threads, \(llmux_simd_level() > 0 ? "avx2+fma" : "scalar"))"
    }

    /// The CPU kernels compute in f32.
    public var activationDType: DType { .f32 }
    /// The CPU keeps its KV cache in f32.
    public var kvCacheDType: DType { .f32 }
    /// The host: the caller sizes the pool.
    public func freeMemoryBytes() -> Int? { nil }

    /// Zeroed, 64-byte-aligned host memory; f32 only (any other dtype fails a precondition).
    public func makeTensor(rows: Int, columns: Int, dtype: DType) -> Tensor {
        precondition(dtype == .f32, "the CPU backend computes in f32")
        return Tensor(buffer: DeviceBuffer(allocating: rows * columns * 4), dtype: .f32, rows: rows, columns: columns)
    }

    /// Copies `values` into a new f32 host tensor; there is no device to transfer to.
    public func upload(floats values: [Float]) -> Tensor {
        let tensor = makeTensor(rows: 1, columns: values.count, dtype: .f32)
        tensor.floats.update(from: values, count: values.count)
        return tensor
    }

    /// Borrows the stored bytes in place, in their own dtype (kept alive by `owner`); the kernels widen them to f32.
    public func makeWeight(address: UnsafeRawPointer, dtype: DType, rows: Int, columns: Int, owner: AnyObject?) -> Tensor {
        let buffer = DeviceBuffer(borrowing: address, byteCount: rows * columns * dtype.byteSize, owner: owner)
        return Tensor(buffer: buffer, dtype: dtype, rows: rows, columns: columns)
    }

    /// Copies the integers into a new host buffer.
    public func upload(_ values: [Int32]) -> IntTensor {
        let buffer = DeviceBuffer(allocating: values.count * 4)
        values.withUnsafeBytes { buffer.address.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return IntTensor(buffer: buffer, count: values.count)
    }

    /// Reads the f32 rows straight from host memory (nothing to wait for), skipping the padding of strided rows.
    public func download(_ tensor: Tensor) -> [Float] {
        var values: [Float] = []
        values.reserveCapacity(tensor.rows * tensor.columns)
        for row in 0..<tensor.rows {
            let start = tensor.floats + row * tensor.rowStride
            values.append(contentsOf: UnsafeBufferPointer(start: start, count: tensor.columns))
        }
        return values
    }

    /// A zeroed host buffer with room for at least one element, so `count` 0 still has an address.
    public func makeIntTensor(count: Int) -> IntTensor {
        IntTensor(buffer: DeviceBuffer(allocating: max(count, 1) * 4), count: count)
    }

    /// Copies into the buffer at once; the values must fit (a precondition).
    public func upload(_ values: [Int32], into destination: IntTensor) {
        precondition(values.count * 4 <= destination.buffer.byteCount, "upload exceeds its buffer")
        values.withUnsafeBytes { destination.buffer.address.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Copies each token's table row, widened to f32, on the calling thread (no worker threads).
    public func embedding(ids: IntTensor, table: Tensor, out: Tensor) {
        precondition(out.rowStride == out.columns && out.columns == table.columns)
        llmux_embedding(ids.pointer, Int32(ids.count), table.address, table.dtype.kernelCode, Int32(table.columns), out.floats)
    }

    /// fp32 on the worker threads (tiny products on the calling thread), widening f32/f16/bf16 weights on the fly;
    /// the bias must be f32.
    public func matmul(_ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor) {
        precondition(x.columns == weight.columns && out.columns == weight.rows && out.rows == x.rows,
                     "matmul shapes: x \(x.rows)x\(x.columns), w \(weight.rows)x\(weight.columns), out \(out.rows)x\(out.columns)")
        precondition(bias == nil || bias!.dtype == .f32, "biases are converted to f32 at load")
        llmux_matmul(x.floats, Int32(x.rowStride), weight.address, weight.dtype.kernelCode, bias?.floats,
                     out.floats, Int32(out.rowStride), Int32(x.rows), Int32(weight.rows), Int32(x.columns))
    }

    /// Contiguous f32 rows; large batches are split by rows over the worker threads.
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        precondition(x.rowStride == x.columns && out.rowStride == out.columns)
        llmux_rmsnorm(x.floats, weight.address, weight.dtype.kernelCode, out.floats, Int32(x.rows), Int32(x.columns), eps)
    }

    /// The add and the norm in one pass per row over contiguous f32 rows, split over the worker threads when large.
    public func addRMSNorm(residual: Tensor, _ x: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        precondition(residual.rowStride == residual.columns && x.rowStride == x.columns && out.rowStride == out.columns)
        llmux_add_rmsnorm(residual.floats, x.floats, weight.address, weight.dtype.kernelCode, out.floats,
                          Int32(x.rows), Int32(x.columns), eps)
    }

    /// In place in f32 (Hugging Face rotate-half pairs), tokens split over the worker threads.
    public func rope(_ x: Tensor, positions: IntTensor, heads: Int, headDim: Int, inverseFrequencies: Tensor) {
        llmux_rope(x.floats, Int32(x.rowStride), positions.pointer, Int32(x.rows), Int32(heads), Int32(headDim),
                   inverseFrequencies.floats)
    }

    /// f32, contiguous `out`; split by rows over the worker threads, or by columns when rows are fewer than threads.
    public func siluMul(gateUp: Tensor, out: Tensor) {
        precondition(gateUp.columns == 2 * out.columns && out.rowStride == out.columns)
        llmux_silu_mul(gateUp.floats, Int32(gateUp.rowStride), out.floats, Int32(out.rows), Int32(out.columns))
    }

    /// Copies each token's kv heads into the f32 pool on the calling thread; negative slots (padding) are skipped.
    public func writeKV(keys: Tensor, values: Tensor, layer: PagedKVLayer, slots: IntTensor, kvHeads: Int, headDim: Int) {
        precondition(keys.rowStride == values.rowStride)
        llmux_kv_write(keys.floats, values.floats, Int32(keys.rowStride), layer.floatKeys, layer.floatValues, slots.pointer,
                       Int32(slots.count), Int32(kvHeads), Int32(headDim), Int32(layer.tokensPerPage), Int64(layer.pageStride))
    }

    /// f32 over the f32 pool, (sequence, kv head, query block) items shared out to the worker threads;
    /// uses neither `maxQueryCount` nor `decodeTokenRows`.
    public func pagedAttention(queries: Tensor, layer: PagedKVLayer, batch: AttentionBatch, heads: Int, kvHeads: Int,
                               headDim: Int, scale: Float, out: Tensor) {
        precondition(out.rowStride == heads * headDim)
        llmux_paged_attention(queries.floats, Int32(queries.rowStride), out.floats, layer.floatKeys, layer.floatValues,
                              Int32(heads), Int32(kvHeads), Int32(headDim), Int32(layer.tokensPerPage), Int64(layer.pageStride),
                              Int32(batch.sequenceCount), batch.queryStarts.pointer, batch.contextLengths.pointer,
                              batch.pageTables.pointer, Int32(batch.maxPages), scale)
    }

    /// Copies f32 rows on the calling thread.
    public func gatherRows(_ x: Tensor, rows: [Int], out: Tensor) {
        for (index, row) in rows.enumerated() {
            (out.floats + index * out.rowStride).update(from: x.floats + row * x.rowStride, count: x.columns)
        }
    }

    /// Samples each row with the host `Sampler` on the calling thread.
    public func sample(logits: Tensor, requests: [SampleRequest]) -> [SampledToken] {
        requests.indices.map { row in
            let pointer = UnsafeBufferPointer(start: logits.floats + row * logits.rowStride, count: logits.columns)
            return Sampler.sample(logits: pointer, request: requests[row])
        }
    }
}

extension PagedKVLayer {
    /// Typed keys of an f32 pool (the CPU's).
    var floatKeys: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32, "the CPU backend keeps an f32 KV cache")
        return keys.assumingMemoryBound(to: Float.self)
    }
    /// Typed values of an f32 pool (the CPU's).
    var floatValues: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32, "the CPU backend keeps an f32 KV cache")
        return values.assumingMemoryBound(to: Float.self)
    }
}

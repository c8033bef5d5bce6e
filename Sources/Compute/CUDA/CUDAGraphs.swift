import Foundation

/// An instantiated CUDA graph and the device memory its recorded launches use.
final class CUDAGraph: @unchecked Sendable {
    let driver: CUDADriver
    let graph: OpaquePointer?
    let exec: OpaquePointer?
    /// Scratch allocated while recording (the graph's launches point into it).
    let retained: [DeviceBuffer]

    init(driver: CUDADriver, graph: OpaquePointer?, exec: OpaquePointer?, retained: [DeviceBuffer]) {
        self.driver = driver
        self.graph = graph
        self.exec = exec
        self.retained = retained
    }

    deinit {
        _ = driver.cuGraphExecDestroy?(exec)
        _ = driver.cuGraphDestroy?(graph)
    }
}

/// Graphs, fused weights and small transfers of the CUDA backend.
extension CUDABackend {
    /// Launches return before the GPU is done; results come back only through `download` and samples.
    public var queuesWork: Bool { true }

    /// True unless `LLMUX_CUDA_GRAPHS=0` or the driver lacks the capture, instantiate or launch entry points.
    public var supportsGraphs: Bool {
        let driver = context.driver
        return graphsEnabled && driver.cuStreamBeginCapture != nil && driver.cuStreamEndCapture != nil
            && driver.cuGraphInstantiateWithFlags != nil && driver.cuGraphLaunch != nil
    }

    /// Records `body` on the stream (relaxed capture mode, so scratch can be allocated meanwhile).
    public func makeGraph(_ body: () throws -> Void) throws -> AnyObject? {
        guard supportsGraphs, !current.usesMainStream else { return nil }
        let driver = context.driver
        try context.makeCurrent()
        // CU_STREAM_CAPTURE_MODE_RELAXED = 2
        try driver.check(driver.cuStreamBeginCapture!(context.stream, 2), "cuStreamBeginCapture")
        captureRetained = []
        capturing = true
        var bodyError: Error?
        do { try body() } catch { bodyError = error }
        capturing = false
        var graph: OpaquePointer?
        let endStatus = driver.cuStreamEndCapture!(context.stream, &graph)
        let retained = captureRetained
        captureRetained = []
        if let bodyError {
            if graph != nil { _ = driver.cuGraphDestroy?(graph) }
            throw bodyError
        }
        try driver.check(endStatus, "cuStreamEndCapture")
        var exec: OpaquePointer?
        let status = driver.cuGraphInstantiateWithFlags!(&exec, graph, 0)
        if status != 0 { _ = driver.cuGraphDestroy?(graph) }
        try driver.check(status, "cuGraphInstantiateWithFlags")
        graphCount += 1
        return CUDAGraph(driver: driver, graph: graph, exec: exec, retained: retained)
    }

    /// Queues the graph on the selected stream, which must be the one it was recorded on (not checked here).
    public func launchGraph(_ graph: AnyObject) throws {
        guard let graph = graph as? CUDAGraph else { throw CUDAError("launchGraph: not a CUDA graph") }
        let driver = context.driver
        try markTimerStart()
        try driver.check(driver.cuGraphLaunch!(graph.exec, context.stream), "cuGraphLaunch")
    }

    /// f32 only: copies on the selected stream and waits for it (one copy per row when rows are strided).
    public func download(_ tensor: Tensor) throws -> [Float] {
        try expect(tensor.dtype == .f32, "download takes f32 tensors")
        try context.makeCurrent()
        var values = [Float](repeating: 0, count: tensor.rows * tensor.columns)
        try values.withUnsafeMutableBytes { bytes in
            if tensor.rowStride == tensor.columns {
                try context.copyToHost(bytes.baseAddress!, from: tensor.deviceAddress, byteCount: bytes.count)
            } else {
                for row in 0..<tensor.rows {
                    try context.copyToHost(bytes.baseAddress! + row * tensor.columns * 4, from: tensor.rows(row, count: 1).deviceAddress,
                                           byteCount: tensor.columns * 4)
                }
            }
        }
        return values
    }

    /// A device allocation zeroed by a memset queued on the selected stream.
    public func makeIntTensor(count: Int) throws -> IntTensor {
        try context.makeCurrent()
        let buffer = try context.allocate(max(count, 1) * 4)
        try context.zero(buffer.deviceAddress, byteCount: max(count, 1) * 4)
        return IntTensor(buffer: buffer, count: count)
    }

    /// Stream-ordered copy through the pinned ring (a synchronous one after a stream wait when too large for it).
    public func upload(_ values: [Int32], into destination: IntTensor) throws {
        try expect(values.count * 4 <= destination.buffer.byteCount, "upload of \(values.count) values into \(destination.count)")
        try context.makeCurrent()
        try markTimerStart()
        try values.withUnsafeBytes { try context.upload($0, to: destination.deviceAddress) }
    }

    /// Fused projection weights: the parts' rows one after the other in one device matrix.
    public func concatenateRows(_ parts: [Tensor]) throws -> Tensor? {
        guard fuseWeights, let first = parts.first else { return nil }
        try expect(parts.allSatisfy { $0.dtype == first.dtype && $0.columns == first.columns && $0.rowStride == $0.columns },
                   "concatenateRows of mismatched parts")
        try context.makeCurrent()
        let rows = parts.reduce(0) { $0 + $1.rows }
        let rowBytes = first.columns * first.dtype.byteSize
        let buffer = try context.allocate(rows * rowBytes)
        var row = 0
        for part in parts {
            try context.copy(buffer.deviceAddress + UInt64(row * rowBytes), from: part.deviceAddress, byteCount: part.rows * rowBytes)
            row += part.rows
        }
        try context.synchronize()
        return Tensor(buffer: buffer, dtype: first.dtype, rows: rows, columns: first.columns)
    }
}

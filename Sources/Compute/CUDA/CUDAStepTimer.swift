import Foundation

/// GPU time between two points of the main stream (timing events), for `llmux bench engine
/// --trace`: with the host's wall time of the same step it splits a step into GPU work and the
/// time the GPU waited for the host.
public final class GPUStepTimer {
    private let backend: CUDABackend
    private var start: OpaquePointer?
    private var end: OpaquePointer?

    init(backend: CUDABackend) throws {
        self.backend = backend
        let driver = backend.context.driver
        // Flags 0: timing enabled (the pooled events have it off).
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
    }

    deinit {
        let driver = backend.context.driver
        _ = driver.cuEventDestroy(start)
        _ = driver.cuEventDestroy(end)
    }

    /// Marks the start of the timed work on the main stream.
    public func begin() throws {
        let driver = backend.context.driver
        try driver.check(driver.cuEventRecord(start, backend.mainSlot.stream), "cuEventRecord")
    }

    /// Marks the end, waits for it, and returns the GPU milliseconds since `begin()`.
    public func finish() throws -> Double {
        let driver = backend.context.driver
        try driver.check(driver.cuEventRecord(end, backend.mainSlot.stream), "cuEventRecord")
        try driver.check(driver.cuEventSynchronize(end), "cuEventSynchronize")
        var milliseconds: Float = 0
        try driver.check(driver.cuEventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
        return Double(milliseconds)
    }
}

extension CUDABackend {
    /// A timer over the main stream (where unpartitioned steps run).
    public func makeStepTimer() throws -> GPUStepTimer { try GPUStepTimer(backend: self) }
}

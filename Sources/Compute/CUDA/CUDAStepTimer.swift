import Foundation

/// GPU time of a step, from its first queued work to the end of the main stream (timing events),
/// for `llmux bench engine --trace`: with the host's wall time of the same step it splits a step
/// into the span the device worked on and the host time before it.
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

    /// Arms the timer: the start is marked when the step queues its first device work (so the
    /// host's planning before it counts as a gap, not as GPU time).
    public func begin() { backend.armedTimer = self }

    /// Marks the start on the stream that work is queued on now.
    func markStart() throws {
        let driver = backend.context.driver
        try driver.check(driver.cuEventRecord(start, backend.context.stream), "cuEventRecord")
    }

    /// Marks the end, waits for it, and returns the GPU milliseconds since the step's first work.
    public func finish() throws -> Double {
        let driver = backend.context.driver
        if backend.armedTimer === self { try backend.markTimerStart() }
        try driver.check(driver.cuEventRecord(end, backend.mainSlot.stream), "cuEventRecord")
        try driver.check(driver.cuEventSynchronize(end), "cuEventSynchronize")
        var milliseconds: Float = 0
        try driver.check(driver.cuEventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
        return Double(milliseconds)
    }
}

extension CUDABackend {
    /// Marks the armed timer's start, if one waits for the step's first work.
    func markTimerStart() throws {
        guard let timer = armedTimer else { return }
        armedTimer = nil
        try timer.markStart()
    }

    /// Starts or stops the profiler's range (`ncu --profile-from-start off` then profiles only the
    /// kernels in between); a no-op where the driver lacks the calls.
    public func setProfilerRange(active: Bool) throws {
        let driver = context.driver
        if let call = active ? driver.cuProfilerStart : driver.cuProfilerStop {
            try driver.check(call(), active ? "cuProfilerStart" : "cuProfilerStop")
        }
    }

    /// A timer over the main stream (where unpartitioned steps run).
    public func makeStepTimer() throws -> GPUStepTimer { try GPUStepTimer(backend: self) }
}

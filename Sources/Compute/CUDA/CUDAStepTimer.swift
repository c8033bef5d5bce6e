import Foundation

/// GPU time of steps, each from its first queued work to the end of the main stream (timing
/// events), for `llmux bench engine --trace`: with the host's wall time of the same steps it
/// splits the run into the spans the device worked and the host time around them. Marking a
/// step's end does not wait for the device (a pipelined engine keeps a step queued across calls);
/// `collect` waits once and returns every step's milliseconds.
public final class GPUStepTimer {
    private let backend: CUDABackend
    /// Event pairs of the marked steps, and those of the step being marked.
    private var marked: [(start: OpaquePointer?, end: OpaquePointer?)] = []
    private var current: (start: OpaquePointer?, end: OpaquePointer?)?

    init(backend: CUDABackend) {
        self.backend = backend
    }

    deinit {
        let driver = backend.context.driver
        for pair in marked + (current.map { [$0] } ?? []) {
            _ = driver.cuEventDestroy(pair.start)
            _ = driver.cuEventDestroy(pair.end)
        }
    }

    /// Arms the timer for a step: its start is marked when the step queues its first device work
    /// (so the host's planning before it counts as a gap, not as GPU time).
    public func begin() throws {
        let driver = backend.context.driver
        var start: OpaquePointer?, end: OpaquePointer?
        // Flags 0: timing enabled (the pooled events have it off).
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        current = (start, end)
        backend.armedTimer = self
    }

    /// Marks the start on the stream that work is queued on now.
    func markStart() throws {
        let driver = backend.context.driver
        try driver.check(driver.cuEventRecord(current?.start, backend.context.stream), "cuEventRecord")
    }

    /// Marks the step's end after the work queued so far, without waiting for it.
    public func mark() throws {
        guard let pair = current else { return }
        let driver = backend.context.driver
        if backend.armedTimer === self { try backend.markTimerStart() }
        try driver.check(driver.cuEventRecord(pair.end, backend.mainSlot.stream), "cuEventRecord")
        marked.append(pair)
        current = nil
    }

    /// Waits for the marked steps and returns the GPU milliseconds of each, from its first work
    /// to its end; forgets them.
    public func collect() throws -> [Double] {
        let driver = backend.context.driver
        defer {
            for pair in marked {
                _ = driver.cuEventDestroy(pair.start)
                _ = driver.cuEventDestroy(pair.end)
            }
            marked = []
        }
        return try marked.map { pair in
            try driver.check(driver.cuEventSynchronize(pair.end), "cuEventSynchronize")
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, pair.start, pair.end), "cuEventElapsedTime")
            return Double(milliseconds)
        }
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
    public func makeStepTimer() -> GPUStepTimer { GPUStepTimer(backend: self) }
}

import Foundation

/// Host time spent in driver calls that can block the engine loop for a while (device memory
/// allocations and frees: `cuMemFree` waits for the device; waits for streams or events) and in
/// the two leaf calls of every eager forward pass (kernel launches with their argument packing,
/// cuBLASLt products). `bench mux` traces print what each job launch added, to tell why a launch
/// took milliseconds. It measures only with `LLMUX_TRACE_JOBS=1` (the variable that turns those
/// traces on), so kernel launches pay nothing otherwise. Like the context it belongs to, it is
/// used from the thread that owns the backend (the unit's engine loop), which also frees the
/// device buffers.
final class HostStallMeter: @unchecked Sendable {
    /// Kinds of blocking calls.
    enum Kind: Int, CaseIterable {
        case allocate, free, wait, launch, matmul
    }

    /// Calls and seconds by kind.
    private(set) var counts = [Int](repeating: 0, count: Kind.allCases.count)
    private(set) var seconds = [Double](repeating: 0, count: Kind.allCases.count)

    /// Whether calls are timed (job traces are on).
    let enabled = JobTracing.isEnabled

    /// Runs `body`, adding its time to `kind` when enabled.
    func measure<T>(_ kind: Kind, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            counts[kind.rawValue] += 1
            seconds[kind.rawValue] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        return try body()
    }

    /// A snapshot of the totals so far.
    var totals: HostStalls {
        func of(_ kind: Kind) -> (Int, Double) { (counts[kind.rawValue], seconds[kind.rawValue]) }
        return HostStalls(allocations: of(.allocate).0, allocationSeconds: of(.allocate).1, frees: of(.free).0,
                          freeSeconds: of(.free).1, waits: of(.wait).0, waitSeconds: of(.wait).1,
                          launches: of(.launch).0, launchSeconds: of(.launch).1, matmuls: of(.matmul).0,
                          matmulSeconds: of(.matmul).1)
    }
}

/// Totals of `HostStallMeter`: blocking driver calls made so far and the host seconds they took.
public struct HostStalls: Sendable {
    /// Device allocations and their seconds.
    public var allocations = 0, allocationSeconds = 0.0
    /// Device frees and their seconds.
    public var frees = 0, freeSeconds = 0.0
    /// Stream and event waits (upload ring reuse, synchronous copies) and their seconds.
    public var waits = 0, waitSeconds = 0.0
    /// Kernel launches (argument packing and `cuLaunchKernel`) and their seconds.
    public var launches = 0, launchSeconds = 0.0
    /// cuBLASLt products (planning included) and their seconds.
    public var matmuls = 0, matmulSeconds = 0.0

    /// What happened between `earlier` and `self`, as "N alloc X ms, …" (empty when nothing did).
    public func since(_ earlier: HostStalls) -> String {
        var parts: [String] = []
        let pairs = [("alloc", allocations - earlier.allocations, allocationSeconds - earlier.allocationSeconds),
                     ("free", frees - earlier.frees, freeSeconds - earlier.freeSeconds),
                     ("wait", waits - earlier.waits, waitSeconds - earlier.waitSeconds),
                     ("kernel", launches - earlier.launches, launchSeconds - earlier.launchSeconds),
                     ("matmul", matmuls - earlier.matmuls, matmulSeconds - earlier.matmulSeconds)]
        for (name, count, seconds) in pairs where count > 0 {
            parts.append(String(format: "%d %@ %.2f ms", count, name, seconds * 1000))
        }
        return parts.joined(separator: ", ")
    }
}

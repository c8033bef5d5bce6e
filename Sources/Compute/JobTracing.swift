import Foundation

/// The one switch for job traces: `LLMUX_TRACE_JOBS=1` makes the partitioned runner log every
/// job launched and finished and the CUDA backend time its blocking host calls. Read once, here,
/// so the two can never disagree.
public enum JobTracing {
    /// Whether `LLMUX_TRACE_JOBS=1` was set when the process started.
    public static let isEnabled = ProcessInfo.processInfo.environment["LLMUX_TRACE_JOBS"] == "1"
}

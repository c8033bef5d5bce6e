import LLMuxCore

/// How a unit shares its memory and compute among colocated models (`--policy`).
public enum SchedulingPolicy: String, Sendable, CaseIterable, Codable {
    /// MuxServe-style spatial-temporal multiplexing: prefill jobs first, round-robin across
    /// models; decode jobs of every model fill the rest; KV quotas move to where they are needed.
    case mux
    /// Each model confined to a fixed share of the KV pool and of every step's token budget, as
    /// if it had its own slice of the device.
    case spatial
    /// One model's step at a time over the whole device, first come first served across models.
    case temporal
}

/// Settings of the scheduler.
public struct SchedulerLimits: Sendable, Equatable {
    /// Tokens per step over all jobs (prefill chunks are cut to fit).
    public var maxTokensPerStep: Int
    /// Sequences per step.
    public var maxSequencesPerStep: Int
    /// Seconds between quota moves under `mux`.
    public var quotaInterval: Double
    /// Limits; the defaults suit the CPU backend.
    public init(maxTokensPerStep: Int = 512, maxSequencesPerStep: Int = 64, quotaInterval: Double = 2) {
        self.maxTokensPerStep = maxTokensPerStep
        self.maxSequencesPerStep = maxSequencesPerStep
        self.quotaInterval = quotaInterval
    }
}

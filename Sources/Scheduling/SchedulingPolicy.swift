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
    /// Under `temporal`, a model's prompt chunks and decode tokens go in two jobs run one after
    /// the other instead of one mixed job: the temporal baseline as MuxServe's evaluation ran it
    /// (prefill and decode were separate processes that never overlapped: Duan et al. 2024, and
    /// `gen_temporal_cfg_from_muxserve_cfg` in hao-ai-lab/MuxServe).
    /// Off by default: a mixed job reads the weights once for both, the stronger baseline.
    public var separatesTemporalPhases: Bool
    /// Under `mux`, each model's prompt chunks and decode tokens go in one mixed job (its own
    /// lane), and the models' jobs run at once on the whole device, without an SM split unless
    /// `mixedPromptTokenLimit` sends a long prompt to one (`llmux serve --mux-jobs mixed|hybrid`).
    /// A separate prompt job reads the model's weights a second time, and on a bandwidth-bound
    /// device that read competes with every decode job; but a long prompt in a mixed job delays
    /// its model's next tokens. Off by default (MuxServe's split); `llmux serve` turns it on for
    /// a unit of one model unless told otherwise.
    public var mixesMuxPhases: Bool
    /// With `mixesMuxPhases`, a prompt with more than this many tokens left to compute is not
    /// mixed: it goes to the unit's prefill lane on the larger partition of an SM split, and the
    /// mixed jobs launched meanwhile take the other partition (MuxServe's split for the long
    /// prompts only). Nil: every prompt is mixed.
    public var mixedPromptTokenLimit: Int?
    /// The `mixedPromptTokenLimit` of `--mux-jobs hybrid`: 256 prompt tokens add about 8 ms to a
    /// Llama-3-8B job on an H100 (about 32,900 prefill tokens/s, BENCHMARKS "CUDA engine"), less
    /// than half of a decode step at 40 requests/s; ShareGPT-like prompts (mean 160) mostly mix.
    public static let hybridPromptTokenLimit = 256
    /// Latency targets by model, which `mux` weighs when it picks an SM split (a model without
    /// one, or a target not yet missed, leaves the split to the queue lengths).
    public var latencyTargets: [ModelID: LatencyTargets]
    /// Limits; the defaults suit the CPU backend.
    public init(maxTokensPerStep: Int = 512, maxSequencesPerStep: Int = 64, quotaInterval: Double = 2,
                separatesTemporalPhases: Bool = false, mixesMuxPhases: Bool = false, mixedPromptTokenLimit: Int? = nil,
                latencyTargets: [ModelID: LatencyTargets] = [:]) {
        self.maxTokensPerStep = maxTokensPerStep
        self.maxSequencesPerStep = maxSequencesPerStep
        self.quotaInterval = quotaInterval
        self.separatesTemporalPhases = separatesTemporalPhases
        self.mixesMuxPhases = mixesMuxPhases
        self.mixedPromptTokenLimit = mixedPromptTokenLimit
        self.latencyTargets = latencyTargets
    }
}

/// A model's latency objectives (its SLO), in seconds.
public struct LatencyTargets: Sendable, Equatable {
    /// Time from a request's arrival to its first token.
    public var timeToFirstToken: Double?
    /// Time between output tokens.
    public var timePerOutputToken: Double?
    /// Targets; nil leaves that one unset.
    public init(timeToFirstToken: Double? = nil, timePerOutputToken: Double? = nil) {
        self.timeToFirstToken = timeToFirstToken
        self.timePerOutputToken = timePerOutputToken
    }
}

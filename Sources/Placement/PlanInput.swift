/// The machines a plan places models on: identical hosts of identical GPUs.
public struct ClusterSpec: Sendable, Codable, Equatable {
    /// Hosts.
    public var hosts: Int
    /// GPUs per host (the CPU counts as one device).
    public var gpusPerHost: Int
    /// Memory of one GPU, bytes.
    public var memoryPerGPU: Double
    /// Device kind for the cost model (`h100`, `h200`, `cpu`).
    public var device: String
    /// Share of each GPU's memory the engine may use (weights, activations and the KV pool).
    public var memoryUtilization: Double
    /// Bytes reserved per model per GPU for activations and workspace.
    public var activationReserve: Double
    /// Bytes of one KV element (2 for bf16 on GPUs, 4 for fp32 on the CPU).
    public var kvBytesPerElement: Int
    /// KV pool bytes per unit, when fixed (the CPU bench's `--kv-cache-memory`); otherwise what
    /// memory is left after weights and reserves.
    public var kvBytesOverride: Double?

    /// A cluster.
    public init(hosts: Int, gpusPerHost: Int, memoryPerGPU: Double, device: String, memoryUtilization: Double = 0.9,
                activationReserve: Double? = nil, kvBytesPerElement: Int? = nil, kvBytesOverride: Double? = nil) {
        self.hosts = hosts
        self.gpusPerHost = gpusPerHost
        self.memoryPerGPU = memoryPerGPU
        self.device = device
        self.memoryUtilization = memoryUtilization
        self.activationReserve = activationReserve ?? (device == "cpu" ? 64e6 : 2e9)
        self.kvBytesPerElement = kvBytesPerElement ?? (device == "cpu" ? 4 : 2)
        self.kvBytesOverride = kvBytesOverride
    }

    /// Every GPU.
    public var gpuCount: Int { hosts * gpusPerHost }

    /// Mesh sizes a unit may have: powers of two up to a host's GPUs.
    public var meshSizes: [Int] { [1, 2, 4, 8, 16].filter { $0 <= gpusPerHost } }

    /// Checks the cluster; throws a message naming the problem.
    public func validate() throws {
        guard hosts > 0, gpusPerHost > 0 else {
            throw PlacementError.invalidInput("the cluster has no GPUs (hosts \(hosts), GPUs per host \(gpusPerHost))")
        }
        guard memoryPerGPU > 0, memoryUtilization > 0, memoryUtilization <= 1 else {
            throw PlacementError.invalidInput("GPU memory must be positive and memory utilization in (0, 1]")
        }
    }
}

/// One model to serve: its shape, expected load and request lengths.
public struct ModelSpec: Sendable, Codable, Equatable {
    /// Serving name.
    public var name: String
    /// Shape.
    public var shape: ModelShape
    /// Checkpoint directory, when known (for `--emit config`).
    public var path: String?
    /// Expected requests per second.
    public var rate: Double
    /// Mean prompt tokens.
    public var promptMean: Double
    /// Mean output tokens.
    public var outputMean: Double

    /// A model.
    public init(name: String, shape: ModelShape, path: String? = nil, rate: Double, promptMean: Double = 161, outputMean: Double = 338) {
        self.name = name
        self.shape = shape
        self.path = path
        self.rate = rate
        self.promptMean = promptMean
        self.outputMean = outputMean
    }
}

/// Knobs of the planner and its estimates.
public struct PlanSettings: Sendable, Codable, Equatable {
    /// A request meets its SLO when it finishes within `sloScale` × its solo latency.
    public var sloScale: Double
    /// Smallest number of whole requests every model's KV share must hold.
    public var minimumSequences: Int
    /// Tokens per scheduler step (the simulator's and the engine's budget).
    public var maxTokensPerStep: Int
    /// Sequences per scheduler step.
    public var maxSequencesPerStep: Int
    /// Seconds the optimizer may spend on mesh mixes before it stops trying more.
    public var timeBudget: Double
    /// Instances with at most this many (mesh mix, assignment) pairs are solved exactly.
    public var exactSearchLimit: Int
    /// Weight of latency (rate-weighted slowdown) against SLO goodput in LLMux's objective; 0
    /// leaves it out (see docs/BENCHMARKS.md for what a positive weight does).
    public var latencyWeight: Double

    /// Settings.
    public init(sloScale: Double = 5, minimumSequences: Int = 4, maxTokensPerStep: Int = 2048, maxSequencesPerStep: Int = 256,
                timeBudget: Double = 30, exactSearchLimit: Int = 20_000, latencyWeight: Double = 0) {
        self.exactSearchLimit = exactSearchLimit
        self.latencyWeight = latencyWeight
        self.sloScale = sloScale
        self.minimumSequences = minimumSequences
        self.maxTokensPerStep = maxTokensPerStep
        self.maxSequencesPerStep = maxSequencesPerStep
        self.timeBudget = timeBudget
    }
}

import Foundation

/// How a unit's jobs share its devices in one step (the simulator's `StepTiming` follows it).
public enum UnitPolicy: String, Sendable, Codable, CaseIterable {
    /// Prefill jobs on one SM partition, decode jobs on the other, both at once.
    case mux
    /// Each model alone on its own SM slice (one model per unit in spatial plans).
    case spatial
    /// One job at a time over the whole device.
    case temporal
}

/// What the estimator predicts for one model (or replica) in a unit.
public struct ModelEstimate: Sendable, Codable, Equatable {
    /// Requests per second served (at most the offered rate).
    public var throughput: Double
    /// Share of requests predicted to meet the SLO.
    public var sloAttainment: Double
    /// Predicted mean end-to-end latency, seconds.
    public var latency: Double
    /// Predicted latency over solo latency.
    public var slowdown: Double
    /// Share of the decode partition's time this model's decode jobs use.
    public var decodeTimeShare: Double
    /// KV quota, bytes.
    public var kvQuotaBytes: Double
}

/// The estimate of one unit.
public struct UnitEstimate: Sendable, Codable, Equatable {
    /// Per model, in the order given.
    public var models: [ModelEstimate]
    /// Mean step time, seconds.
    public var stepTime: Double
    /// SM share of the prefill partition (mux on GPUs); 1 otherwise.
    public var prefillShare: Double
    /// KV pool bytes.
    public var kvBytes: Double
    /// Load: 1 means saturated.
    public var utilization: Double
    /// Σ throughput.
    public var throughput: Double { models.reduce(0) { $0 + $1.throughput } }
    /// Σ rate × attainment: requests per second that meet the SLO.
    public var goodput: Double { models.reduce(0) { $0 + $1.throughput * $1.sloAttainment } }
}

/// A fast analytic model of a unit in steady state, used by the optimizer: Little's law for the
/// decode batch of each model (rate × output length × step time), the cost table for step times,
/// and prefill jobs that lengthen a step only by what does not overlap the decode jobs (mux on a
/// partitioned GPU) or entirely (temporal, spatial, the CPU).
public struct UnitEstimator: Sendable {
    /// Hosts, GPUs per host, device kind and memory budget of the cluster the units run on.
    public let cluster: ClusterSpec
    /// The models to place, with rates and prompt/output lengths; model indices refer to this order.
    public let models: [ModelSpec]
    /// SLO scale, KV minimum and per-step scheduler limits the estimates assume.
    public let settings: PlanSettings
    /// Whether the device has SM partitions (GPUs do; the CPU does not).
    public let partitioned: Bool
    private let entries: [[CostEntry?]]   // [model][meshSizeIndex]
    private let soloLatency: [Double]
    private let minimumMesh: [Int?]

    /// An estimator over `table`. Throws when the table lacks a model.
    public init(cluster: ClusterSpec, models: [ModelSpec], table: CostTable, settings: PlanSettings = PlanSettings()) throws {
        self.cluster = cluster
        self.models = models
        self.settings = settings
        self.partitioned = cluster.device != "cpu" && table.entries.contains { $0.smShares.count > 1 }
        var entries: [[CostEntry?]] = []
        for model in models {
            entries.append(try cluster.meshSizes.map { try table.entry(model: model.name, shape: model.shape.name, meshSize: $0) })
        }
        self.entries = entries
        var minimum: [Int?] = []
        for model in models {
            minimum.append(cluster.meshSizes.first { size in
                Self.kvLeft(cluster: cluster, size: size, weights: model.shape.weightBytes, count: 1)
                    >= Double(settings.minimumSequences) * Self.kvPerSequence(model, cluster)
            })
        }
        self.minimumMesh = minimum
        var solo: [Double] = []
        for (index, model) in models.enumerated() {
            let size = minimum[index] ?? cluster.meshSizes.last!
            let entry = entries[index][cluster.meshSizes.firstIndex(of: size)!]!
            let context = model.promptMean + model.outputMean / 2
            solo.append(entry.prefill(tokens: model.promptMean) + max(0, model.outputMean - 1) * entry.decode(batch: 1, context: context))
        }
        self.soloLatency = solo
    }

    /// The smallest mesh that holds the model with room for a few requests, or nil.
    public func minimumMeshSize(_ model: Int) -> Int? { minimumMesh[model] }

    /// Predicted latency of one request of the mean lengths served alone on the model's smallest mesh.
    public func soloLatency(_ model: Int) -> Double { soloLatency[model] }

    /// The cost entry of `model` on `size` GPUs.
    public func entry(_ model: Int, meshSize size: Int) -> CostEntry {
        entries[model][cluster.meshSizes.firstIndex(of: size)!]!
    }

    static func kvPerSequence(_ model: ModelSpec, _ cluster: ClusterSpec) -> Double {
        Double(model.shape.kvBytesPerToken(bytesPerElement: cluster.kvBytesPerElement)) * (model.promptMean + model.outputMean)
    }

    static func kvLeft(cluster: ClusterSpec, size: Int, weights: Double, count: Int) -> Double {
        let total = Double(size) * cluster.memoryPerGPU * cluster.memoryUtilization
        let left = total - weights - Double(size * count) * cluster.activationReserve
        if let fixed = cluster.kvBytesOverride { return left > 0 ? min(fixed, left) : left }
        return left
    }

    /// KV bytes a unit of `size` GPUs holding `items` (model indices) has left, or nil when the
    /// weights do not fit or some model cannot hold `minimumSequences` requests in its share.
    public func kvBytes(size: Int, items: [(model: Int, rate: Double)]) -> Double? {
        let weights = items.reduce(0) { $0 + models[$1.model].shape.weightBytes }
        let kv = Self.kvLeft(cluster: cluster, size: size, weights: weights, count: items.count)
        guard kv > 0 else { return nil }
        let shares = kvShares(kv: kv, items: items)
        for (item, share) in zip(items, shares) where share < Double(settings.minimumSequences) * Self.kvPerSequence(models[item.model], cluster) {
            return nil
        }
        return kv
    }

    /// KV quotas in bytes, proportional to rate × per-token KV bytes (as the scheduler starts them).
    func kvShares(kv: Double, items: [(model: Int, rate: Double)]) -> [Double] {
        let weights = items.map { max($0.rate, 1e-6) * Double(models[$0.model].shape.kvBytesPerToken(bytesPerElement: cluster.kvBytesPerElement)) }
        let total = weights.reduce(0, +)
        // The scheduler gives every model a floor; mirror it so a rarely used model is not starved.
        let floor = kv / Double(8 * items.count)
        return weights.map { max(floor, (kv - floor * Double(items.count)) * $0 / total + floor) }
    }

    /// Estimates a unit of `size` GPUs holding `items` under `policy`; nil when it does not fit.
    /// Under mux on a GPU the prefill share is chosen among 0.3, 0.5 and 0.7 unless given.
    public func estimate(size: Int, items: [(model: Int, rate: Double)], policy: UnitPolicy = .mux,
                         prefillShare: Double? = nil) -> UnitEstimate? {
        guard !items.isEmpty, let kv = kvBytes(size: size, items: items) else { return nil }
        if policy == .mux && partitioned {
            let shares = prefillShare.map { [$0] } ?? [0.3, 0.5, 0.7]
            return shares.map { evaluate(size: size, items: items, kv: kv, policy: policy, prefillShare: $0) }
                .max { ($0.goodput, $0.throughput) < ($1.goodput, $1.throughput) }
        }
        return evaluate(size: size, items: items, kv: kv, policy: policy, prefillShare: 1)
    }

    private func evaluate(size: Int, items: [(model: Int, rate: Double)], kv: Double, policy: UnitPolicy,
                          prefillShare: Double) -> UnitEstimate {
        let overlap = policy == .mux && partitioned
        let decodeShare = overlap ? 1 - prefillShare : 1
        let quotas = kvShares(kv: kv, items: items)
        let costs = items.map { entry($0.model, meshSize: size) }
        let specs = items.map { models[$0.model] }
        let caps = zip(specs, quotas).map { spec, quota in
            min(Double(settings.maxSequencesPerStep), quota / Self.kvPerSequence(spec, cluster))
        }
        let prefill = zip(costs, specs).map { $0.prefill(tokens: $1.promptMean, share: overlap ? prefillShare : 1) }
        let contexts = specs.map { $0.promptMean + $0.outputMean / 2 }

        // Steady state at rates scaled by phi: the step time x solves x = T_dec(x) + Λx·E[excess].
        func solve(_ phi: Double) -> (step: Double, decode: [Double], batches: [Double])? {
            var x = zip(costs, contexts).reduce(0) { $0 + $1.0.decode(batch: 1, context: $1.1, share: decodeShare) }
            var decode = [Double](repeating: 0, count: items.count)
            var batches = decode
            for _ in 0..<80 {
                var total = 0.0
                for i in items.indices {
                    // Sequences decoding at once (Little's law); a model with fewer than one on
                    // average runs a decode job only in the steps where it has one.
                    batches[i] = min(caps[i], phi * items[i].rate * specs[i].outputMean * x)
                    let active = batches[i] > 0 ? 1 - exp(-batches[i]) : 0
                    decode[i] = active > 0 ? active * costs[i].decode(batch: max(1, batches[i] / active), context: contexts[i], share: decodeShare) : 0
                    total += decode[i]
                }
                var excessLoad = 0.0
                for i in items.indices {
                    excessLoad += phi * items[i].rate * (overlap ? max(0, prefill[i] - total) : prefill[i])
                }
                guard excessLoad < 0.98 else { return nil }
                let next = total / (1 - excessLoad)
                if abs(next - x) < 1e-6 * x { x = next; break }
                x = 0.5 * x + 0.5 * next
                if x > 1e4 { return nil }
            }
            return (x, decode, batches)
        }

        var phi = 1.0
        var solved = solve(1)
        if solved == nil {
            var (low, high) = (0.0, 1.0)
            for _ in 0..<14 {
                let mid = (low + high) / 2
                if solve(mid) != nil { low = mid } else { high = mid }
            }
            phi = low
            solved = solve(max(low, 1e-6))
        }
        let step = solved?.step ?? 1e4
        let decodeTimes = solved?.decode ?? [Double](repeating: 0, count: items.count)
        let decodeTotal = max(decodeTimes.reduce(0, +), 1e-12)
        var estimates: [ModelEstimate] = []
        var utilization = phi < 1 ? 1.0 : 0.0
        for i in items.indices {
            let rate = items[i].rate
            let capacity = caps[i] / (specs[i].outputMean * step + prefill[i])
            let served = min(phi * rate, capacity)
            let fraction = rate > 0 ? served / rate : 1
            utilization = max(utilization, rate > 0 ? min(1, phi * rate / capacity) : 0)
            let latency = prefill[i] + specs[i].outputMean * step
            let slowdown = latency / soloLatency[items[i].model]
            let scale = settings.sloScale
            // Requests vary in length: full attainment up to 0.6 × scale, none past 1.6 × scale.
            let withinSLO = min(1, max(0, (1.6 * scale - slowdown) / scale))
            let attainment = fraction >= 0.999 ? withinSLO : withinSLO * fraction * fraction
            estimates.append(ModelEstimate(throughput: served, sloAttainment: attainment, latency: latency, slowdown: slowdown,
                                           decodeTimeShare: decodeTimes[i] / decodeTotal, kvQuotaBytes: quotas[i]))
        }
        return UnitEstimate(models: estimates, stepTime: step, prefillShare: overlap ? prefillShare : 1, kvBytes: kv,
                            utilization: utilization)
    }
}

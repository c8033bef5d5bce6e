import Foundation

/// Which placement algorithm.
public enum PlacementAlgorithm: String, Sendable, Codable, CaseIterable {
    /// LLMux: mesh mixes instead of node splits (identical hosts), replicas of popular models,
    /// SLO-weighted greedy placement, local search over mesh mixes and moves.
    case llmux
    /// MuxServe's Algorithm 1: every combination of per-host splits, greedy by computation need,
    /// maximizing estimated throughput; one copy of each model.
    case muxserve
    /// Every model alone on its own mesh (spare GPUs double the busiest models' meshes).
    case spatial
}

/// The placement optimizer.
public struct PlacementOptimizer {
    /// The steady-state model of a unit that prices every candidate placement; holds the cluster, models and settings.
    public let estimator: UnitEstimator
    /// Whether the cost table was measured or computed from the roofline, recorded in the plan.
    public let costSource: CostSource
    var cluster: ClusterSpec { estimator.cluster }
    var models: [ModelSpec] { estimator.models }
    var settings: PlanSettings { estimator.settings }

    /// An optimizer over a cost table. Throws on an empty cluster, a model that fits no mesh or a
    /// table without the models.
    public init(cluster: ClusterSpec, models: [ModelSpec], table: CostTable, settings: PlanSettings = PlanSettings()) throws {
        try cluster.validate()
        guard !models.isEmpty else { throw PlacementError.invalidInput("no models to place") }
        if let duplicate = Dictionary(grouping: models, by: \.name).first(where: { $0.value.count > 1 }) {
            throw PlacementError.invalidInput("model name `\(duplicate.key)` appears twice")
        }
        self.estimator = try UnitEstimator(cluster: cluster, models: models, table: table, settings: settings)
        self.costSource = table.source
        for (index, model) in models.enumerated() where estimator.minimumMeshSize(index) == nil {
            let largest = cluster.meshSizes.last!
            throw PlacementError.invalidInput(String(
                format: "model `%@` (%.1f GB of weights) does not fit the largest mesh (%d GPUs of %.0f GB, %.0f%% usable, with room for %d requests)",
                model.name, model.shape.weightBytes / 1e9, largest, cluster.memoryPerGPU / 1e9, cluster.memoryUtilization * 100,
                settings.minimumSequences))
        }
        for model in models where !(model.rate >= 0) || model.promptMean < 1 || model.outputMean < 1 {
            throw PlacementError.invalidInput("model `\(model.name)`: rate must be ≥ 0 and mean lengths ≥ 1")
        }
    }

    /// Plans with `algorithm`.
    public func plan(_ algorithm: PlacementAlgorithm) throws -> PlacementPlan {
        let start = Date()
        var search = Search(optimizer: self)
        let layout: Layout
        switch algorithm {
        case .muxserve: layout = try search.muxserve()
        case .spatial: layout = try search.spatial()
        case .llmux: layout = try search.llmux()
        }
        return makePlan(algorithm: algorithm, layout: layout, seconds: Date().timeIntervalSince(start), candidates: search.candidates)
    }

    // MARK: - Plan assembly

    private func makePlan(algorithm: PlacementAlgorithm, layout: Layout, seconds: Double, candidates: Int) -> PlacementPlan {
        let policy: UnitPolicy = algorithm == .spatial ? .spatial : .mux
        let used = layout.meshes.filter { !$0.items.isEmpty }.sorted { $0.size > $1.size }
        let placements = Self.assignGPUs(sizes: used.map(\.size), hosts: cluster.hosts, perHost: cluster.gpusPerHost)!
        var units: [PlannedUnit] = []
        var served = 0.0, good = 0.0
        for (mesh, (host, gpus)) in zip(used, placements) {
            let items = mesh.items.map { layout.items[$0] }
            let pairs = items.map { (model: $0.model, rate: $0.rate) }
            let estimate = estimator.estimate(size: mesh.size, items: pairs, policy: policy)!
            var planned: [PlannedModel] = []
            for (item, est) in zip(items, estimate.models) {
                let share = policy == .mux ? (1 - estimate.prefillShare) * est.decodeTimeShare : 1
                planned.append(PlannedModel(
                    name: models[item.model].name, modelIndex: item.model, replica: item.replica, trafficShare: item.share,
                    rate: item.rate, kvQuotaBytes: est.kvQuotaBytes, smShare: estimator.partitioned ? share : 1,
                    estimatedThroughput: est.throughput, estimatedSLOAttainment: est.sloAttainment))
                served += est.throughput
                good += est.throughput * est.sloAttainment
            }
            units.append(PlannedUnit(host: host, gpus: gpus, policy: policy, prefillShare: estimate.prefillShare, kvBytes: estimate.kvBytes,
                                     models: planned, estimatedStepTime: estimate.stepTime))
        }
        units.sort { ($0.host, $0.gpus.first ?? 0) < ($1.host, $1.gpus.first ?? 0) }
        let offered = models.reduce(0) { $0 + $1.rate }
        return PlacementPlan(
            algorithm: algorithm.rawValue, cluster: cluster, models: models, settings: settings, costSource: costSource, units: units,
            estimate: PlanEstimate(throughput: served, offered: offered, sloAttainment: offered > 0 ? good / offered : 1,
                                   gpusUsed: used.reduce(0) { $0 + $1.size }),
            planningSeconds: seconds, candidatesEvaluated: candidates)
    }

    /// Places meshes (largest first) on hosts at aligned GPU offsets; nil when they do not fit.
    static func assignGPUs(sizes: [Int], hosts: Int, perHost: Int) -> [(Int, [Int])]? {
        var free = [[Bool]](repeating: [Bool](repeating: true, count: perHost), count: hosts)
        var result: [(Int, [Int])] = []
        for size in sizes {
            var placed = false
            search: for host in 0..<hosts {
                var offset = 0
                while offset + size <= perHost {
                    if free[host][offset..<(offset + size)].allSatisfy({ $0 }) {
                        for g in offset..<(offset + size) { free[host][g] = false }
                        result.append((host, Array(offset..<(offset + size))))
                        placed = true
                        break search
                    }
                    offset += size
                }
            }
            if !placed { return nil }
        }
        return result
    }
}

/// A model replica to place.
struct Item {
    let model: Int
    let replica: Int
    let share: Double
    let rate: Double
    let minMesh: Int
    /// Computation need (GPU-seconds per second on its smallest mesh), for ordering.
    let need: Double
}

/// A mesh being filled.
struct Mesh {
    let size: Int
    var items: [Int] = []
    var estimate: UnitEstimate?
}

/// A complete assignment.
struct Layout {
    var items: [Item]
    var meshes: [Mesh]
}

/// The search state: caches unit estimates across candidates.
struct Search {
    let optimizer: PlacementOptimizer
    var cache: [String: UnitEstimate?] = [:]
    var candidates = 0
    var estimator: UnitEstimator { optimizer.estimator }
    var cluster: ClusterSpec { optimizer.cluster }

    init(optimizer: PlacementOptimizer) { self.optimizer = optimizer }

    enum Objective: Equatable {
        /// MuxServe: served requests per second.
        case throughput
        /// LLMux: requests per second within the SLO, then throughput, then (with a positive
        /// weight) lower latency: rate-weighted slowdown, capped.
        case goodput(latencyWeight: Double)
        func score(_ e: UnitEstimate?) -> Double {
            guard let e else { return 0 }
            switch self {
            case .throughput: return e.throughput
            case .goodput(let weight):
                let slowdown = weight > 0 ? e.models.reduce(0) { $0 + $1.throughput * min($1.slowdown, 20) } : 0
                return e.goodput + 0.05 * e.throughput - weight * slowdown
            }
        }
    }
    var goodput: Objective { .goodput(latencyWeight: optimizer.settings.latencyWeight) }

    mutating func estimate(size: Int, items: [Int], in all: [Item]) -> UnitEstimate? {
        guard !items.isEmpty else { return nil }
        let sorted = items.sorted()
        let key = "\(size)|" + sorted.map { String($0) }.joined(separator: ",")
        if let hit = cache[key] { return hit }
        let value = estimator.estimate(size: size, items: sorted.map { (model: all[$0].model, rate: all[$0].rate) })
        cache[key] = value
        return value
    }

    func baseItems() -> [Item] {
        optimizer.models.enumerated().map { index, model in
            let minMesh = estimator.minimumMeshSize(index)!
            return Item(model: index, replica: 0, share: 1, rate: model.rate, minMesh: minMesh, need: need(index, rate: model.rate, size: minMesh))
        }
    }

    /// GPU-seconds per second a model's load costs on `size` GPUs at a moderate batch.
    func need(_ model: Int, rate: Double, size: Int) -> Double {
        let spec = optimizer.models[model]
        let entry = estimator.entry(model, meshSize: size)
        let context = spec.promptMean + spec.outputMean / 2
        let perRequest = entry.prefill(tokens: spec.promptMean) + spec.outputMean * entry.decode(batch: 16, context: context) / 16
        return rate * perRequest * Double(size)
    }

    // MARK: greedy placement on a fixed mesh mix

    /// Places `order` onto meshes of `sizes`; nil when some item fits nowhere. `candidateLimit`
    /// bounds the non-empty meshes tried per item (the least loaded ones).
    mutating func greedy(items: [Item], order: [Int], sizes: [Int], objective: Objective, candidateLimit: Int?) -> Layout? {
        candidates += 1
        var meshes = sizes.sorted(by: >).map { Mesh(size: $0) }
        for index in order {
            let item = items[index]
            var pool: [Int] = []
            var emptySeen = Set<Int>()
            var occupied: [Int] = []
            for (m, mesh) in meshes.enumerated() where mesh.size >= item.minMesh {
                if mesh.items.isEmpty {
                    if emptySeen.insert(mesh.size).inserted { pool.append(m) }
                } else if !mesh.items.contains(where: { items[$0].model == item.model }) {
                    occupied.append(m)
                }
            }
            if let limit = candidateLimit, occupied.count > limit {
                occupied.sort { (meshes[$0].estimate?.utilization ?? 0, $0) < (meshes[$1].estimate?.utilization ?? 0, $1) }
                occupied = Array(occupied.prefix(limit))
            }
            pool += occupied
            var best: (mesh: Int, gain: Double, utilization: Double, size: Int)?
            for m in pool {
                guard let after = estimate(size: meshes[m].size, items: meshes[m].items + [index], in: items) else { continue }
                let gain = objective.score(after) - objective.score(meshes[m].estimate)
                let candidate = (mesh: m, gain: gain, utilization: after.utilization, size: meshes[m].size)
                if let current = best {
                    let tolerance = 1e-9 * max(1, abs(current.gain))
                    if gain > current.gain + tolerance { best = candidate; continue }
                    if gain < current.gain - tolerance { continue }
                    let better = objective == .throughput
                        ? candidate.size < current.size
                        : (candidate.utilization, candidate.size) < (current.utilization, current.size)
                    if better { best = candidate }
                } else {
                    best = candidate
                }
            }
            guard let chosen = best else { return nil }
            meshes[chosen.mesh].items.append(index)
            meshes[chosen.mesh].estimate = estimate(size: meshes[chosen.mesh].size, items: meshes[chosen.mesh].items, in: items)
        }
        return Layout(items: items, meshes: meshes)
    }

    func total(_ layout: Layout, _ objective: Objective) -> Double {
        layout.meshes.reduce(0) { $0 + objective.score($1.estimate) }
    }

    // MARK: MuxServe

    /// Splits of one host into power-of-two meshes (MuxServe lists these by hand).
    static func hostSplits(_ gpus: Int) -> [[Int]] {
        var result: [[Int]] = []
        func go(_ left: Int, _ maxPart: Int, _ parts: [Int]) {
            if left == 0 { result.append(parts); return }
            for part in [16, 8, 4, 2, 1] where part <= maxPart && part <= left { go(left - part, part, parts + [part]) }
        }
        go(gpus, gpus, [])
        return result
    }

    mutating func muxserve() throws -> Layout {
        let items = baseItems()
        // Largest computation requirement first: rate × model scale, then scale.
        let scale = optimizer.models.map { (Double($0.shape.parameterCount) / 6.7e9).rounded() }
        let order = items.indices.sorted {
            (items[$0].rate * scale[items[$0].model], scale[items[$0].model]) > (items[$1].rate * scale[items[$1].model], scale[items[$1].model])
        }
        let splits = Self.hostSplits(cluster.gpusPerHost)
        let combinations = Self.binomial(splits.count + cluster.hosts - 1, cluster.hosts)
        guard combinations <= 50_000 else {
            throw PlacementError.invalidInput("MuxServe's enumeration would try \(Int(combinations)) combinations of host splits; use --algorithm llmux")
        }
        let largestMin = items.map(\.minMesh).max()!
        var best: Layout?
        var bestScore = -1.0
        // Every multiset of host splits (combinations with replacement).
        func visit(_ start: Int, _ left: Int, _ sizes: [Int], _ body: ([Int]) -> Void) {
            if left == 0 { body(sizes); return }
            for s in start..<splits.count { visit(s, left - 1, sizes + splits[s], body) }
        }
        var mixes: [[Int]] = []
        visit(0, cluster.hosts, []) { mixes.append($0) }
        for sizes in mixes {
            guard sizes.max()! >= largestMin, sizes.count <= items.count else { continue }
            guard let layout = greedy(items: items, order: order, sizes: sizes, objective: .throughput, candidateLimit: nil) else { continue }
            let score = total(layout, .throughput)
            if score > bestScore + 1e-9 { best = layout; bestScore = score }
        }
        guard let best else { throw infeasible() }
        return best
    }

    static func binomial(_ n: Int, _ k: Int) -> Double {
        var result = 1.0
        for i in 0..<min(k, n - k) { result = result * Double(n - i) / Double(i + 1) }
        return result
    }

    func infeasible() -> PlacementError {
        let weights = optimizer.models.reduce(0) { $0 + $1.shape.weightBytes }
        return .invalidInput(String(format: "the models (%.1f GB of weights) do not fit on %d GPUs of %.0f GB", weights / 1e9,
                                    cluster.gpuCount, cluster.memoryPerGPU / 1e9))
    }

    // MARK: spatial

    mutating func spatial() throws -> Layout {
        let items = baseItems()
        var sizes = items.map(\.minMesh)
        guard PlacementOptimizer.assignGPUs(sizes: sizes.sorted(by: >), hosts: cluster.hosts, perHost: cluster.gpusPerHost) != nil else {
            throw PlacementError.invalidInput("spatial partitioning needs \(sizes.reduce(0, +)) GPUs in whole meshes; the cluster has \(cluster.gpuCount)")
        }
        // Spare GPUs double the mesh of the model with the most need per GPU, while it fits.
        var grown = true
        while grown {
            grown = false
            let ranked = items.indices.sorted { need($0, rate: items[$0].rate, size: sizes[$0]) / Double(sizes[$0]) > need($1, rate: items[$1].rate, size: sizes[$1]) / Double(sizes[$1]) }
            for i in ranked where sizes[i] * 2 <= cluster.gpusPerHost {
                var trial = sizes
                trial[i] *= 2
                if PlacementOptimizer.assignGPUs(sizes: trial.sorted(by: >), hosts: cluster.hosts, perHost: cluster.gpusPerHost) != nil {
                    sizes = trial
                    grown = true
                    break
                }
            }
        }
        var meshes: [Mesh] = []
        for (index, size) in sizes.enumerated() {
            candidates += 1
            var mesh = Mesh(size: size, items: [index])
            mesh.estimate = estimator.estimate(size: size, items: [(model: items[index].model, rate: items[index].rate)], policy: .spatial)
            meshes.append(mesh)
        }
        return Layout(items: items, meshes: meshes)
    }
}

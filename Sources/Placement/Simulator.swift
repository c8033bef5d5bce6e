import Bench
import Foundation
import KVMemory
import LLMuxCore
import Scheduling

/// What a simulation produced.
public struct SimulationResult: Sendable, Codable {
    /// Scheduling policy simulated (`plan` when each unit kept its own).
    public var policy: String
    /// Seconds of simulated time until the last unit finished (or the time limit).
    public var seconds: Double
    /// Over every request.
    public var overall: LatencySummary
    /// Per model, in the plan's model order.
    public var perModel: [LatencySummary]
    /// Per-request records (arrival, first token, finish…).
    public var records: [RequestRecord]
    /// Steps simulated over all units.
    public var steps: Int
    /// Wall seconds the simulation took.
    public var wallSeconds: Double
    /// Every simulated step of every unit, in each unit's order (only when `ClusterSimulator.tracing`).
    public var trace: [StepTraceEntry]?
    /// Decode passes whose sequences' mean context lay past the longest context the cost table
    /// profiled for their model (`CostEntry.decodeContexts`), so that their price extended the
    /// grid's last segment instead of interpolating measured points. On the CPU that extension
    /// misses the rise once a small model's KV cache and weights outgrow the last-level cache
    /// (llama-s at batch 2 and context 2048: 1.35 ms extended from 512 and 1024, 2.03 ms measured).
    public var extrapolatedPasses = 0
    /// Passes simulated over all units (one per model per step).
    public var passes = 0
}

/// A discrete-event simulation of every unit of a plan, driven by the real `Scheduler`: each
/// unit's clock advances by the cost model's latency of the step the scheduler planned.
public struct ClusterSimulator {
    /// The placement whose units are simulated.
    public let plan: PlacementPlan
    /// Job latencies that advance each unit's clock.
    public let table: CostTable
    /// The estimator built over `table` for the plan's cluster, models and settings.
    public let estimator: UnitEstimator
    /// Overrides every unit's policy when set.
    public var policy: UnitPolicy?
    /// Scheduler limits of every unit.
    public var limits: SchedulerLimits
    /// Seconds between quota moves.
    public var quotaInterval: Double
    /// Record every step (`SimulationResult.trace`), to compare with `llmux bench mux --trace`.
    public var tracing = false

    /// A simulator of `plan` with latencies from `table`.
    public init(plan: PlacementPlan, table: CostTable, policy: UnitPolicy? = nil, limits: SchedulerLimits? = nil) throws {
        self.plan = plan
        self.table = table
        self.policy = policy
        self.estimator = try UnitEstimator(cluster: plan.cluster, models: plan.models, table: table, settings: plan.settings)
        self.limits = limits ?? SchedulerLimits(maxTokensPerStep: plan.settings.maxTokensPerStep,
                                                maxSequencesPerStep: plan.settings.maxSequencesPerStep)
        self.quotaInterval = self.limits.quotaInterval
        for model in plan.models.indices where !plan.units.contains(where: { $0.models.contains { $0.modelIndex == model } }) {
            throw PlacementError.invalidInput("the plan serves no copy of model `\(plan.models[model].name)`")
        }
    }

    /// Solo latency of a request (SLO reference): its prefill plus its decode steps at batch 1 on
    /// the model's smallest mesh with the whole device.
    public func soloLatency(model: Int, prompt: Int, output: Int) -> Double {
        let size = estimator.minimumMeshSize(model) ?? plan.cluster.meshSizes.last!
        let entry = estimator.entry(model, meshSize: size)
        return entry.prefill(tokens: Double(prompt)) + Double(max(0, output - 1)) * entry.decode(batch: 1, context: Double(prompt) + Double(output) / 2)
    }

    func timing(for unitPolicy: UnitPolicy) -> StepTiming {
        guard estimator.partitioned else { return .fused }
        switch unitPolicy {
        case .mux: return .partitioned
        case .temporal: return .serial
        case .spatial: return .sliced
        }
    }

    /// Runs `workload` (model indices follow the plan's model order) until every request is done
    /// or `timeLimit` seconds of simulated time pass.
    public func run(_ workload: [WorkloadRequest], timeLimit: Double) throws -> SimulationResult {
        let started = Date()
        // Route each model's requests over its replicas by smooth weighted round-robin.
        var replicas: [[(unit: Int, share: Double)]] = plan.models.indices.map { _ in [] }
        for (u, unit) in plan.units.enumerated() {
            for model in unit.models { replicas[model.modelIndex].append((u, model.trafficShare)) }
        }
        var credit = replicas.map { $0.map { _ in 0.0 } }
        var perUnit = plan.units.map { _ in [Int]() }
        for (index, request) in workload.enumerated() {
            guard request.modelIndex < replicas.count else {
                throw PlacementError.invalidInput("workload model index \(request.modelIndex) is outside the plan's \(replicas.count) models")
            }
            let m = request.modelIndex
            let total = replicas[m].reduce(0) { $0 + $1.share }
            for r in replicas[m].indices { credit[m][r] += replicas[m][r].share }
            let pick = credit[m].indices.max { credit[m][$0] < credit[m][$1] }!
            credit[m][pick] -= total
            perUnit[replicas[m][pick].unit].append(index)
        }
        var records = workload.map { request in
            RequestRecord(modelIndex: request.modelIndex, arrival: request.arrival, promptTokens: request.promptLength,
                          soloLatency: soloLatency(model: request.modelIndex, prompt: request.promptLength, output: request.outputLength))
        }
        var end = 0.0
        var steps = 0
        var passes = 0
        var extrapolated = 0
        var trace: [StepTraceEntry] = []
        for (u, unit) in plan.units.enumerated() where !perUnit[u].isEmpty {
            let outcome = try simulate(unit: unit, requests: perUnit[u], workload: workload, records: &records, timeLimit: timeLimit)
            end = max(end, outcome.end)
            steps += outcome.steps
            passes += outcome.passes
            extrapolated += outcome.extrapolatedPasses
            trace += outcome.trace
        }
        let seconds = min(max(end, workload.last?.arrival ?? 0), timeLimit)
        return SimulationResult(
            policy: policy?.rawValue ?? "plan", seconds: seconds, overall: LatencySummary(records, duration: seconds),
            perModel: plan.models.indices.map { m in LatencySummary(records.filter { $0.modelIndex == m }, duration: seconds) },
            records: records, steps: steps, wallSeconds: Date().timeIntervalSince(started), trace: tracing ? trace : nil,
            extrapolatedPasses: extrapolated, passes: passes)
    }

    /// What one unit's event loop produced.
    struct UnitOutcome {
        var end: Double
        var steps: Int
        var passes: Int
        var extrapolatedPasses: Int
        var trace: [StepTraceEntry]
    }

    /// One unit's event loop: its end time, its step and pass counts and, when `tracing`, its steps.
    func simulate(unit: PlannedUnit, requests: [Int], workload: [WorkloadRequest], records: inout [RequestRecord],
                  timeLimit: Double) throws -> UnitOutcome {
        let unitPolicy = policy ?? unit.policy
        let timing = timing(for: unitPolicy)
        let element = plan.cluster.kvBytesPerElement
        let perToken = Dictionary(uniqueKeysWithValues: unit.models.map {
            (ModelID($0.name), plan.models[$0.modelIndex].shape.kvBytesPerToken(bytesPerElement: element))
        })
        // Pages as the runner cuts them: 16 tokens of the largest per-token footprint.
        let pageBytes = 16 * perToken.values.max()!
        let pageCount = Int(unit.kvBytes) / pageBytes
        guard pageCount > 0 else { throw PlacementError.invalidInput("a unit's KV pool holds no page") }
        let kvCache = KVCacheManager(pageCount: pageCount, tokensPerPageByModel: perToken.mapValues { pageBytes / $0 })
        var schedulingPolicy: SchedulingPolicy
        switch unitPolicy {
        case .mux: schedulingPolicy = .mux
        case .spatial: schedulingPolicy = .spatial
        case .temporal: schedulingPolicy = .temporal
        }
        var scheduler = Scheduler(policy: schedulingPolicy, limits: limits, kvCache: kvCache,
                                  expectedRates: Dictionary(uniqueKeysWithValues: unit.models.map { (ModelID($0.name), $0.rate) }))
        let cost = UnitStepCost(simulator: self, unit: unit, timing: timing)
        var trace: [StepTraceEntry] = []
        var lastModel: String?
        var now = 0.0
        var next = 0
        var steps = 0
        var passes = 0
        var extrapolated = 0
        var recordBySequence: [SequenceID: Int] = [:]
        var target: [SequenceID: Int] = [:]
        var counter: UInt64 = 1
        while next < requests.count || scheduler.liveCount > 0 {
            if now > timeLimit { break }
            while next < requests.count && workload[requests[next]].arrival <= now {
                let index = requests[next]
                let request = workload[index]
                let id = SequenceID(counter)
                counter += 1
                let model = ModelID(plan.models[request.modelIndex].name)
                let prompt = [TokenID](repeating: 3, count: request.promptLength)
                do {
                    try scheduler.add(SequenceState(id: id, model: model, promptTokens: prompt,
                                                    parameters: SamplingParameters(seed: 1, maxTokens: request.outputLength, stopAtEOS: false),
                                                    arrivalTime: request.arrival))
                    recordBySequence[id] = index
                    target[id] = request.outputLength
                } catch {
                    // Never fits this unit: it counts as unfinished.
                }
                next += 1
            }
            if scheduler.liveCount == 0 {
                if next < requests.count { now = max(now, workload[requests[next]].arrival) }
                continue
            }
            let live = scheduler.liveCount
            let stepPlan = scheduler.schedule(now: now)
            if stepPlan.isEmpty {
                // Nothing can run until something arrives (should not happen with live sequences).
                guard next < requests.count else { break }
                now = max(now, workload[requests[next]].arrival)
                continue
            }
            var loads = ModelStepLoad.of(stepPlan)
            let seconds = cost.seconds(&loads, previous: lastModel) + table.engineOverhead(sequences: loads.reduce(0) { $0 + $1.sequences })
            lastModel = loads.last?.model ?? lastModel
            passes += loads.count
            extrapolated += loads.filter { cost.decodesPastProfiledContexts($0) }.count
            if tracing { trace.append(StepTraceEntry(start: now, seconds: seconds, liveSequences: live, loads: loads)) }
            now += seconds
            steps += 1
            var result = StepResult()
            for job in stepPlan.jobs {
                for sequence in job.sequences where sequence.sample != nil {
                    result.samples[sequence.sequenceID] = SampledToken(tokenID: 4, logprob: 0)
                }
            }
            for (id, _) in scheduler.commit(result) {
                guard let index = recordBySequence[id] else { continue }
                records[index].outputTokens += 1
                if records[index].firstToken == nil { records[index].firstToken = now }
                if let state = scheduler.sequences[id], state.outputTokens.count >= target[id]! {
                    records[index].finish = now
                    scheduler.finish(id, reason: .length)
                }
            }
        }
        return UnitOutcome(end: now, steps: steps, passes: passes, extrapolatedPasses: extrapolated, trace: trace)
    }
}

import Bench
import LLMuxCore

/// How long one step of a unit takes, from its jobs' predicted latencies.
///
/// - `fused` (the CPU, every policy): the CPU has no SM partitions; the runner fuses each model's
///   prefill and decode jobs into one pass and runs the models one after another, so a step takes
///   the sum over models of one fused pass each (`CostEntry.fused`).
/// - `partitioned` (mux on a GPU): prefill jobs run back to back on the prefill partition (the
///   unit's `prefillShare` of the SMs) while decode jobs run back to back on the decode partition
///   (the rest), both at once: the step takes the longer of the two partitions' sums.
/// - `serial` (temporal on a GPU): every job in turn on the whole device: the sum.
/// - `sliced` (spatial on a GPU): each model's fused pass on its own slice (`smShare`) at once:
///   the longest.
public enum StepTiming: String, Sendable, Codable {
    case fused, partitioned, serial, sliced
}

/// Prices the steps of one unit from its models' cost entries.
struct UnitStepCost {
    let timing: StepTiming
    let entries: [String: CostEntry]
    /// Each model's SM share when `sliced`.
    let shares: [String: Double]
    let prefillShare: Double

    init(simulator: ClusterSimulator, unit: PlannedUnit, timing: StepTiming) {
        self.timing = timing
        var entries: [String: CostEntry] = [:]
        var shares: [String: Double] = [:]
        for model in unit.models {
            entries[model.name] = simulator.estimator.entry(model.modelIndex, meshSize: unit.meshSize)
            // Spatial plans give each model its slice; other units split evenly when simulated spatially.
            shares[model.name] = unit.policy == .spatial ? model.smShare : 1 / Double(unit.models.count)
        }
        self.entries = entries
        self.shares = shares
        self.prefillShare = unit.prefillShare
    }

    /// Whether `load` decodes sequences whose mean context lies past the longest context profiled
    /// for its model, i.e. its price extends the grid's last segment.
    func decodesPastProfiledContexts(_ load: ModelStepLoad) -> Bool {
        guard load.decodeBatch > 0, let longest = entries[load.model]?.decodeContexts.last else { return false }
        return load.decodeContext > longest
    }

    /// Seconds of the jobs of a step whose per-model loads are `loads` (the engine's own
    /// overhead not included); sets each load's own prediction. `previous` is the model whose
    /// pass ran last before this step (nil: none yet).
    func seconds(_ loads: inout [ModelStepLoad], previous: String?) -> Double {
        func fusedPass(_ load: ModelStepLoad, share: Double, cold: Bool = false) -> Double {
            entries[load.model]!.fused(prefillTokens: Double(load.prefillTokens), decodeBatch: Double(load.decodeBatch),
                                       decodeContext: load.decodeContext, share: share, cold: cold)
        }
        switch timing {
        case .fused:
            // The runner runs the models' passes one after another in plan order (the loads'
            // order); a pass finds its weights in the caches only when the pass before was its
            // own model's (the step before, when it is first).
            var last = previous
            for index in loads.indices {
                loads[index].predictedSeconds = fusedPass(loads[index], share: 1, cold: last != loads[index].model)
                last = loads[index].model
            }
            return loads.reduce(0) { $0 + $1.predictedSeconds! }
        case .serial:
            for index in loads.indices { loads[index].predictedSeconds = fusedPass(loads[index], share: 1) }
            return loads.reduce(0) { $0 + $1.predictedSeconds! }
        case .partitioned:
            var prefill = 0.0, decode = 0.0
            for index in loads.indices {
                let load = loads[index], entry = entries[load.model]!
                let p = load.prefillTokens > 0 ? entry.prefill(tokens: Double(load.prefillTokens), share: prefillShare) : 0
                let d = entry.decode(batch: Double(load.decodeBatch), context: load.decodeContext, share: 1 - prefillShare)
                loads[index].predictedSeconds = p + d
                prefill += p
                decode += d
            }
            return max(prefill, decode)
        case .sliced:
            for index in loads.indices { loads[index].predictedSeconds = fusedPass(loads[index], share: shares[loads[index].model] ?? 1) }
            return loads.map { $0.predictedSeconds! }.max() ?? 0
        }
    }
}

extension ClusterSimulator {
    /// Predicted seconds of one step of unit `unit` in which the models ran `loads`, the engine's
    /// own overhead (`CostTable.engineOverhead`) included, when `previous` was the last model to run before it; sets each
    /// load's own prediction. Compares a measured trace (`llmux bench mux --trace`) with the cost
    /// model step by step, apart from the scheduling.
    public func predictStep(_ loads: inout [ModelStepLoad], previous: String?, unit: Int = 0) -> Double {
        let planned = plan.units[unit]
        let cost = UnitStepCost(simulator: self, unit: planned, timing: timing(for: policy ?? planned.policy))
        return cost.seconds(&loads, previous: previous) + table.engineOverhead(sequences: loads.reduce(0) { $0 + $1.sequences })
    }
}

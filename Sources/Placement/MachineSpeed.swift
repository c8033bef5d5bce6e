import Foundation

/// How fast the machine ran during a real run compared with when its cost table was profiled,
/// from reference steps timed in both (`llmux bench mux` times each model's batch-1 decode alone
/// before its runs). A check of the comparison, never an input to the simulation: a simulation
/// priced from a table profiled at another speed cannot match the run's latencies, and on a
/// shared VM the speed drifts 5–20 % within minutes while the CPU workload's TPOT p50 moves
/// about three times as much as a uniform change of every step's cost.
public struct MachineSpeedCheck: Sendable, Codable, Equatable {
    /// One model's reference step: measured in the run, predicted by the table.
    public struct Model: Sendable, Codable, Equatable {
        /// Serving name.
        public var model: String
        /// Seconds the run measured per decode step.
        public var measured: Double
        /// Seconds the table predicts for the same step (warm decode at batch 1 plus the engine's
        /// own time for one sequence).
        public var predicted: Double
        /// measured / predicted.
        public var ratio: Double { predicted > 0 ? measured / predicted : .nan }
    }

    /// Models in the run's order, those the table has an entry for.
    public var models: [Model]

    /// The median of the models' ratios (1: the machine ran as fast as during the profile).
    public var medianRatio: Double {
        let ratios = models.map(\.ratio).filter { $0.isFinite }.sorted()
        guard !ratios.isEmpty else { return .nan }
        let mid = ratios.count / 2
        return ratios.count % 2 == 1 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2
    }

    /// Whether the median ratio lies within `tolerance` of 1 (0.05: the step-cost error at which
    /// the CPU workload's TPOT p50 leaves ±15 %).
    public func holds(tolerance: Double = 0.05) -> Bool { abs(medianRatio - 1) <= tolerance }

    /// Compares `decodeStepSeconds` (per model: seconds per decode step of one sequence alone,
    /// its contexts averaging `context` tokens) with `table`'s warm batch-1 decode at that context
    /// plus its engine overhead for one sequence. Models without an entry are left out.
    public init(table: CostTable, decodeStepSeconds: [(model: String, seconds: Double)], context: Double, meshSize: Int = 1) {
        models = decodeStepSeconds.compactMap { model, seconds in
            guard let entry = try? table.entry(model: model, meshSize: meshSize) else { return nil }
            let predicted = entry.decode(batch: 1, context: context) + table.engineOverhead(sequences: 1)
            return Model(model: model, measured: seconds, predicted: predicted)
        }
    }
}

import LLMuxCore

/// The SM partitionings a unit asks its executor for, and how `mux` picks among its splits.
///
/// A partitioning is a list of SM counts (one per partition); a job names one by its index
/// (`JobPlan.partitioning`) and a partition inside it (`JobPlan.partition`). Index 0 is always the
/// whole device, so a job can always run unpartitioned. Counts are multiples of 8 because Hopper
/// hands out SMs in groups of 8 (`cuDevSmResourceSplitByCount`); the executor rounds to whatever
/// its device grants, and the scheduler works with the granted counts.
public enum PartitionLayout {
    /// SMs per group on Hopper: the granularity of green-context splits.
    public static let granularity = 8

    /// Prefill shares of the `mux` splits (of the whole device), smallest first.
    public static let muxPrefillShares: [Double] = [1.0 / 2, 5.0 / 8, 3.0 / 4, 7.0 / 8]

    /// The partitionings to request under `policy` on a device of `multiprocessorCount` SMs.
    ///
    /// - index 0: `[multiprocessorCount]`, the whole device (every policy).
    /// - `spatial`, index 1: one partition per model, in the scheduler's model order (sorted by
    ///   name), sized in proportion to rate × max(parameterCount, 1) (compute need), each a
    ///   multiple of 8 SMs and at least 8; left out when the device has fewer than 8 SMs a model.
    /// - `mux`, indexes 1…: `[prefill SMs, decode SMs]` splits with prefill shares of about 1/2,
    ///   5/8, 3/4 and 7/8 (duplicates after rounding dropped), so the split can follow the load.
    /// - `temporal`: index 0 only (one job at a time on the whole device).
    public static func layouts(policy: SchedulingPolicy, multiprocessorCount: Int, models: [ModelDescriptor],
                               expectedRates: [ModelID: Double]) -> [[Int]] {
        let whole = [[multiprocessorCount]]
        switch policy {
        case .temporal:
            return whole
        case .spatial:
            let ordered = models.sorted { $0.id.name < $1.id.name }
            let weights = ordered.map { max(0, expectedRates[$0.id] ?? 1) * Double(max($0.parameterCount, 1)) }
            guard let shares = spatialShares(weights: weights, multiprocessorCount: multiprocessorCount) else { return whole }
            return whole + [shares]
        case .mux:
            return whole + muxSplits(multiprocessorCount: multiprocessorCount)
        }
    }

    /// SM counts proportional to `weights`, each a multiple of 8 and at least 8, summing to at
    /// most `multiprocessorCount`; nil when there are not 8 SMs per weight.
    public static func spatialShares(weights: [Double], multiprocessorCount: Int) -> [Int]? {
        let groups = multiprocessorCount / granularity
        guard !weights.isEmpty, groups >= weights.count else { return nil }
        let total = weights.reduce(0, +)
        // Ideal groups per model; equal when no weight is known.
        let ideal = weights.map { total > 0 ? Double(groups) * $0 / total : Double(groups) / Double(weights.count) }
        var assigned = ideal.map { max(1, Int($0)) }
        // The floor of one group can overshoot: take back from the most over-served first.
        while assigned.reduce(0, +) > groups {
            let index = assigned.indices.filter { assigned[$0] > 1 }.max {
                Double(assigned[$0]) - ideal[$0] < Double(assigned[$1]) - ideal[$1]
            }!
            assigned[index] -= 1
        }
        // Hand the rounding remainder to the most under-served (largest remainder method).
        while assigned.reduce(0, +) < groups {
            let index = assigned.indices.max { ideal[$0] - Double(assigned[$0]) < ideal[$1] - Double(assigned[$1]) }!
            assigned[index] += 1
        }
        return assigned.map { $0 * granularity }
    }

    /// The `[prefill SMs, decode SMs]` splits of `mux`, both multiples of 8 and at least 8,
    /// prefill share ascending, duplicates dropped; empty below 16 SMs.
    public static func muxSplits(multiprocessorCount: Int) -> [[Int]] {
        let groups = multiprocessorCount / granularity
        guard groups >= 2 else { return [] }
        var splits: [[Int]] = []
        for share in muxPrefillShares {
            let prefill = min(groups - 1, max(1, Int((share * Double(multiprocessorCount) / Double(granularity)).rounded())))
            // Decode gets the rest, cut to whole groups (the executor could not grant a partial one).
            let decode = (multiprocessorCount - prefill * granularity) / granularity
            let split = [prefill * granularity, decode * granularity]
            if decode >= 1 && !splits.contains(split) { splits.append(split) }
        }
        return splits
    }

    /// Estimated cost of the current load on a `[prefillSMs, decodeSMs]` split of a device of
    /// `multiprocessorCount` SMs, in "jobs on the whole device" (lower is better):
    ///
    ///     waitingPrefillRequests × N / prefillSMs + decodingSequences × max(1, 0.5 N / decodeSMs)
    ///
    /// Prefill is compute-bound: its time grows as 1 / SMs. Decode is memory-bound: a decode step
    /// keeps its speed down to about half the SMs (half the SMs still saturate HBM bandwidth), and
    /// slows as 1 / SMs below that. Each waiting prompt and each decoding sequence counts once, so
    /// a long prompt queue pulls the split toward prefill and many decoding sequences toward decode
    /// (MuxServe, Duan et al. 2024, shares SMs between the prefill and decode jobs of colocated
    /// models the same way; this is the cheap rule that stands in for its profiled cost model).
    public static func muxSplitCost(waitingPrefillRequests: Int, decodingSequences: Int, multiprocessorCount: Int,
                                    prefillSMs: Int, decodeSMs: Int) -> Double {
        let n = Double(max(multiprocessorCount, 1))
        let prefill = Double(waitingPrefillRequests) * n / Double(max(prefillSMs, 1))
        let decode = Double(decodingSequences) * max(1, 0.5 * n / Double(max(decodeSMs, 1)))
        return prefill + decode
    }

    /// The index (into `partitionings`) of the two-partition split of least cost, the first on
    /// ties; nil when `partitionings` holds no split after the whole device. The cost is
    /// `muxSplitCost` with its prefill and decode terms multiplied by `prefillWeight` and
    /// `decodeWeight` (how far each phase is behind its latency targets; 1 without targets).
    public static func bestMuxSplit(partitionings: [[Int]], waitingPrefillRequests: Int, decodingSequences: Int,
                                    prefillWeight: Double = 1, decodeWeight: Double = 1) -> Int? {
        guard partitionings.count > 1 else { return nil }
        let n = partitionings[0].reduce(0, +)
        var best: (index: Int, cost: Double)?
        for index in 1..<partitionings.count where partitionings[index].count == 2 {
            let split = partitionings[index]
            let prefill = muxSplitCost(waitingPrefillRequests: waitingPrefillRequests, decodingSequences: 0,
                                       multiprocessorCount: n, prefillSMs: split[0], decodeSMs: split[1])
            let decode = muxSplitCost(waitingPrefillRequests: 0, decodingSequences: decodingSequences,
                                      multiprocessorCount: n, prefillSMs: split[0], decodeSMs: split[1])
            let cost = prefillWeight * prefill + decodeWeight * decode
            if best == nil || cost < best!.cost { best = (index, cost) }
        }
        return best?.index
    }
}

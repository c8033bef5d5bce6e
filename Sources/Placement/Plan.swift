import Foundation

/// One model (or one replica of it) in a unit of a plan.
public struct PlannedModel: Sendable, Codable, Equatable {
    /// Serving name.
    public var name: String
    /// Index of the model in the plan's model list.
    public var modelIndex: Int
    /// Which replica (0 when the model is served once).
    public var replica: Int
    /// Share of the model's requests routed here.
    public var trafficShare: Double
    /// Requests per second expected here.
    public var rate: Double
    /// KV quota, bytes (the scheduler's starting quota).
    public var kvQuotaBytes: Double
    /// SM share: of the decode partition under mux (its decode jobs' share of that partition's
    /// time), of the device under spatial, 1 under temporal.
    public var smShare: Double
    /// Estimated requests per second served.
    public var estimatedThroughput: Double
    /// Estimated share of requests within the SLO.
    public var estimatedSLOAttainment: Double
}

/// One unit: a mesh of GPUs of one host and the models colocated on it.
public struct PlannedUnit: Sendable, Codable, Equatable {
    /// Host index.
    public var host: Int
    /// GPU indices on that host.
    public var gpus: [Int]
    /// Scheduling policy of its engine.
    public var policy: UnitPolicy
    /// SM share of the prefill partition (mux on GPUs; 1 elsewhere).
    public var prefillShare: Double
    /// KV pool bytes of the unit (all its GPUs).
    public var kvBytes: Double
    /// Models.
    public var models: [PlannedModel]
    /// Estimated mean step time, seconds.
    public var estimatedStepTime: Double
    /// GPUs in the mesh.
    public var meshSize: Int { gpus.count }
}

/// Plan-wide estimates.
public struct PlanEstimate: Sendable, Codable, Equatable {
    /// Requests per second served.
    public var throughput: Double
    /// Requests per second offered.
    public var offered: Double
    /// Share of requests within the SLO.
    public var sloAttainment: Double
    /// GPUs holding at least one model.
    public var gpusUsed: Int
}

/// The placement optimizer's output.
public struct PlacementPlan: Sendable, Codable, Equatable {
    /// `llmux`, `muxserve` or `spatial`.
    public var algorithm: String
    /// The cluster.
    public var cluster: ClusterSpec
    /// The models, in input order (workload model i is models[i]).
    public var models: [ModelSpec]
    /// Settings used.
    public var settings: PlanSettings
    /// `measured` or `roofline`.
    public var costSource: CostSource
    /// The units.
    public var units: [PlannedUnit]
    /// Estimates.
    public var estimate: PlanEstimate
    /// Seconds the optimizer took.
    public var planningSeconds: Double
    /// Mesh mixes evaluated.
    public var candidatesEvaluated: Int

    /// A human-readable summary.
    public func table() -> String {
        var lines = [
            "\(algorithm): \(units.count) units on \(estimate.gpusUsed) of \(cluster.gpuCount) \(cluster.device) GPUs; cost model \(costSource.rawValue)",
            "host | GPUs       | policy | prefill SM | KV GiB | models (rate → est. req/s, SLO)",
        ]
        for unit in units {
            let gpuList = unit.gpus.map(String.init).joined(separator: ",")
            let names = unit.models.map { m in
                String(format: "%@%@ %.2f→%.2f %.0f%%", m.name, m.replica > 0 || m.trafficShare < 1 ? "#\(m.replica)" : "", m.rate,
                       m.estimatedThroughput, m.estimatedSLOAttainment * 100)
            }.joined(separator: "; ")
            lines.append(String(format: "%4d | %-10@ | %-6@ | %10.1f | %6.1f | %@", unit.host, gpuList, unit.policy.rawValue,
                                unit.prefillShare, unit.kvBytes / 1_073_741_824, names))
        }
        lines.append(String(format: "estimated: %.2f of %.2f req/s served, SLO attainment %.1f%%; planned in %.3f s (%d mesh mixes)",
                            estimate.throughput, estimate.offered, estimate.sloAttainment * 100, planningSeconds, candidatesEvaluated))
        return lines.joined(separator: "\n")
    }
}

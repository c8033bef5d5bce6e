import Bench
import LLMuxCore
@testable import Placement

/// Small shapes and hand-made cost tables for the tests.
enum Fixture {
    static let small = ModelShape(name: "small", hiddenSize: 64, intermediateSize: 128, layerCount: 2, headCount: 4, kvHeadCount: 2,
                                  vocabSize: 512, bytesPerWeight: 2)

    /// An entry whose prefill always takes `prefill` seconds and decode `decode` seconds.
    static func constant(_ model: String, meshSize: Int = 1, prefill: Double, decode: Double, shares: [Double] = [1.0]) -> CostEntry {
        CostEntry(model: model, meshSize: meshSize, smShares: shares, prefillTokens: [1, 1024],
                  prefillSeconds: shares.map { _ in [prefill, prefill] }, decodeBatches: [1, 256], decodeContexts: [1, 4096],
                  decodeSeconds: shares.map { _ in [[decode, decode], [decode, decode]] })
    }

    /// `constant`, with other constant figures for a pass right after another model's (cold caches).
    static func constant(_ model: String, prefill: Double, decode: Double, coldPrefill: Double, coldDecode: Double) -> CostEntry {
        var entry = constant(model, prefill: prefill, decode: decode)
        entry.coldPrefillSeconds = [[coldPrefill, coldPrefill]]
        entry.coldDecodeSeconds = [[[coldDecode, coldDecode], [coldDecode, coldDecode]]]
        return entry
    }

    /// An entry with linear costs: prefill a + b·tokens, decode c + d·batch (context-free).
    static func linear(_ model: String, meshSize: Int, prefill: (Double, Double), decode: (Double, Double)) -> CostEntry {
        let tokens: [Double] = [1, 4096], batches: [Double] = [1, 1024]
        return CostEntry(model: model, meshSize: meshSize, smShares: [0.3, 1.0], prefillTokens: tokens,
                         prefillSeconds: [0.3, 1.0].map { s in tokens.map { (prefill.0 + prefill.1 * $0) / s } },
                         decodeBatches: batches, decodeContexts: [1, 4096],
                         decodeSeconds: [0.3, 1.0].map { s in batches.map { b in [1.0, 1.0].map { _ in (decode.0 + decode.1 * b) / min(1, s / 0.5) } } })
    }

    /// A one-unit plan of `models` (name, rate) on one device.
    static func plan(models: [(String, Double)], device: String, policy: UnitPolicy, prefillShare: Double = 1,
                     kvBytes: Double = 67_108_864) -> PlacementPlan {
        let cluster = ClusterSpec(hosts: 1, gpusPerHost: 1, memoryPerGPU: 1e9, device: device)
        let specs = models.map { ModelSpec(name: $0.0, shape: small, rate: $0.1, promptMean: 8, outputMean: 4) }
        let planned = models.enumerated().map { index, model in
            PlannedModel(name: model.0, modelIndex: index, replica: 0, trafficShare: 1, rate: model.1, kvQuotaBytes: kvBytes / Double(models.count),
                         smShare: 1, estimatedThroughput: 0, estimatedSLOAttainment: 0)
        }
        let unit = PlannedUnit(host: 0, gpus: [0], policy: policy, prefillShare: prefillShare, kvBytes: kvBytes, models: planned,
                               estimatedStepTime: 0)
        return PlacementPlan(algorithm: "test", cluster: cluster, models: specs, settings: PlanSettings(), costSource: .measured,
                             units: [unit], estimate: PlanEstimate(throughput: 0, offered: 0, sloAttainment: 0, gpusUsed: 1),
                             planningSeconds: 0, candidatesEvaluated: 0)
    }
}

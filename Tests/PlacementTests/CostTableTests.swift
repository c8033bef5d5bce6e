import Foundation
import Testing
@testable import Placement

@Suite struct CostTableTests {
    @Test func linearInterpolationHitsGridPointsAndMidpoints() {
        let xs: [Double] = [1, 2, 4], ys: [Double] = [10, 20, 60]
        #expect(Interpolation.linear(xs, ys, 1) == 10)
        #expect(Interpolation.linear(xs, ys, 2) == 20)
        #expect(Interpolation.linear(xs, ys, 1.5) == 15)
        #expect(Interpolation.linear(xs, ys, 3) == 40)
        // Before the first point the first value holds; past the last the last segment extends.
        #expect(Interpolation.linear(xs, ys, 0.5) == 10)
        #expect(Interpolation.linear(xs, ys, 6) == 100)
    }

    @Test func decodeIsBilinearInBatchAndContextAndInterpolatesShares() {
        let entry = CostEntry(model: "m", meshSize: 1, smShares: [0.5, 1.0], prefillTokens: [1, 100],
                              prefillSeconds: [[2, 200], [1, 100]], decodeBatches: [1, 3], decodeContexts: [10, 30],
                              decodeSeconds: [[[2, 4], [6, 8]], [[1, 2], [3, 4]]])
        #expect(entry.validationError() == nil)
        #expect(entry.decode(batch: 1, context: 10) == 1)
        #expect(entry.decode(batch: 2, context: 20) == 2.5)        // mean of 1, 2, 3, 4
        #expect(entry.decode(batch: 2, context: 20, share: 0.5) == 5)
        #expect(entry.decode(batch: 2, context: 20, share: 0.75) == 3.75)
        #expect(entry.decode(batch: 2, context: 20, share: 0.1) == 5)  // clamped to the lowest share
        #expect(entry.prefill(tokens: 50.5) == 50.5)
        #expect(entry.prefill(tokens: 50.5, share: 0.5) == 101)
    }

    @Test func fusedPassPricesDenseWorkAsPrefillPlusDecodeAttention() {
        let entry = CostEntry(model: "m", meshSize: 1, smShares: [1], prefillTokens: [1, 101], prefillSeconds: [[1, 11]],
                              decodeBatches: [1, 11], decodeContexts: [10, 110], decodeSeconds: [[[1, 2], [3, 5]]])
        #expect(entry.fused(prefillTokens: 0, decodeBatch: 11, decodeContext: 110) == 5)
        #expect(entry.fused(prefillTokens: 51, decodeBatch: 0, decodeContext: 0) == 6)
        // 40 + 11 tokens of dense work (prefill of 51: 6 s) plus the decode tokens' extra attention (5 − 3).
        #expect(abs(entry.fused(prefillTokens: 40, decodeBatch: 11, decodeContext: 110) - (6 + 2)) < 1e-12)
    }

    @Test func coldFiguresServeAPassAfterAnotherModelAndWarmOnesServeWhenMissing() throws {
        var entry = CostEntry(model: "m", meshSize: 1, smShares: [1], prefillTokens: [1, 101], prefillSeconds: [[1, 11]],
                              decodeBatches: [1, 11], decodeContexts: [10, 110], decodeSeconds: [[[1, 2], [3, 5]]])
        // Without cold figures a cold pass costs what a warm one does.
        #expect(entry.fused(prefillTokens: 40, decodeBatch: 11, decodeContext: 110, cold: true)
                == entry.fused(prefillTokens: 40, decodeBatch: 11, decodeContext: 110))
        entry.coldPrefillSeconds = [[3, 13]]
        entry.coldDecodeSeconds = [[[2, 3], [4, 7]]]
        #expect(entry.validationError() == nil)
        #expect(entry.prefill(tokens: 51, cold: true) == 8)
        #expect(entry.prefill(tokens: 51) == 6)
        #expect(entry.decode(batch: 11, context: 110, cold: true) == 7)
        // Cold dense work (prefill of 51: 8 s) plus the cold decode tokens' extra attention (7 − 4).
        #expect(abs(entry.fused(prefillTokens: 40, decodeBatch: 11, decodeContext: 110, cold: true) - (8 + 3)) < 1e-12)
        entry.coldDecodeSeconds = [[[2, 3]]]
        #expect(entry.validationError() != nil)
        // Tables written before cold figures existed still load.
        let old = #"{"model":"m","meshSize":1,"smShares":[1],"prefillTokens":[1],"prefillSeconds":[[1]],"decodeBatches":[1],"decodeContexts":[1],"decodeSeconds":[[[1]]]}"#
        let decoded = try JSONDecoder().decode(CostEntry.self, from: Data(old.utf8))
        #expect(decoded.coldPrefillSeconds == nil && decoded.decode(batch: 1, context: 1, cold: true) == 1)
    }

    @Test func rooflineDecodeAtBatchOneIsBandwidthBoundAndPrefillComputeBound() {
        let roofline = Roofline(device: .h100)
        let shape = ModelShape.builtIn["llama-7b"]!
        let decode = roofline.decode(shape, batch: 1, context: 16, meshSize: 1, share: 1)
        let bandwidth = DeviceSpec.h100.memoryBandwidth * DeviceSpec.h100.bandwidthEfficiency
        #expect(abs(decode - DeviceSpec.h100.jobOverhead - shape.streamedBytes / bandwidth) / decode < 0.02)
        // Decode barely slows at half the SMs; prefill of many tokens takes twice as long.
        #expect(roofline.decode(shape, batch: 1, context: 16, meshSize: 1, share: 0.5) == decode)
        let full = roofline.prefill(shape, tokens: 4096, meshSize: 1, share: 1)
        let half = roofline.prefill(shape, tokens: 4096, meshSize: 1, share: 0.5)
        #expect(abs((half - DeviceSpec.h100.jobOverhead) / (full - DeviceSpec.h100.jobOverhead) - 2) < 0.01)
        // Tensor parallelism shortens a step, but the all-reduces keep it above a quarter.
        let tp4 = roofline.prefill(shape, tokens: 4096, meshSize: 4, share: 1)
        #expect(tp4 < full / 2 && tp4 > full / 4)
    }

    @Test func tableLookupFallsBackToShapeAndNearestMeshSize() throws {
        let table = Roofline(device: .h100).table(models: [("llama-7b", ModelShape.builtIn["llama-7b"]!)], meshSizes: [1, 2])
        #expect(table.source == .roofline)
        let byShape = try table.entry(model: "llm-0", shape: "llama-7b", meshSize: 2)
        #expect(byShape.meshSize == 2)
        let scaled = try table.entry(model: "llama-7b", meshSize: 4)
        #expect(abs(scaled.decode(batch: 1, context: 16) - byShape.decode(batch: 1, context: 16) / 2) < 1e-12)
        #expect(throws: PlacementError.self) { try table.entry(model: "unknown", meshSize: 1) }
    }
}

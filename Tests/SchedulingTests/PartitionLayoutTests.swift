import LLMuxCore
import Scheduling
import Testing

@Suite struct PartitionLayoutTests {
    func model(_ name: String, parameters: Int) -> ModelDescriptor {
        ModelDescriptor(id: ModelID(name), contextLength: 4096, vocabularySize: 100, eosTokenIDs: [],
                        kvShape: KVCacheShape(layerCount: 1, kvHeadCount: 1, headDim: 1, bytesPerElement: 2),
                        parameterCount: parameters)
    }

    @Test func wholeDeviceComesFirstUnderEveryPolicy() {
        let models = [model("a", parameters: 1), model("b", parameters: 1)]
        for policy in SchedulingPolicy.allCases {
            let layouts = PartitionLayout.layouts(policy: policy, multiprocessorCount: 132, models: models, expectedRates: [:])
            #expect(layouts.first == [132])
        }
        #expect(PartitionLayout.layouts(policy: .temporal, multiprocessorCount: 132, models: models, expectedRates: [:]) == [[132]])
    }

    @Test func spatialSharesFollowRateTimesSizeInMultiplesOfEight() throws {
        // Given out of order: the layout follows the scheduler's order (sorted by name).
        let models = [model("c", parameters: 1_000_000_000), model("a", parameters: 1_000_000_000), model("b", parameters: 8_000_000_000)]
        let rates: [ModelID: Double] = ["a": 1, "b": 1, "c": 4]
        let layouts = PartitionLayout.layouts(policy: .spatial, multiprocessorCount: 132, models: models, expectedRates: rates)
        #expect(layouts.count == 2)
        let shares = layouts[1]
        // Weights a 1, b 8, c 4 over 16 groups of 8 SMs.
        #expect(shares == [8, 80, 40])
        #expect(shares.allSatisfy { $0 % 8 == 0 && $0 >= 8 } && shares.reduce(0, +) <= 132)
        #expect(shares[1] > shares[2] && shares[2] > shares[0])
    }

    @Test func spatialSharesKeepAFloorAndStayWithinTheDevice() throws {
        // One heavy model and three light ones: each light one still gets 8 SMs.
        let shares = try #require(PartitionLayout.spatialShares(weights: [1000, 1, 1, 1], multiprocessorCount: 66))
        #expect(shares == [40, 8, 8, 8])
        for count in [16, 24, 64, 114, 132, 144] {
            for weights in [[1.0], [1, 1], [3, 1, 2], [0, 0, 5], [1, 1, 1, 1, 1, 1, 1, 1]] {
                guard let shares = PartitionLayout.spatialShares(weights: weights, multiprocessorCount: count) else {
                    #expect(count / 8 < weights.count)
                    continue
                }
                #expect(shares.allSatisfy { $0 % 8 == 0 && $0 >= 8 } && shares.reduce(0, +) <= count, "\(count) \(weights)")
                #expect(shares.reduce(0, +) > count - 8, "every whole group is used")
                for i in weights.indices { for j in weights.indices where weights[i] > weights[j] { #expect(shares[i] >= shares[j]) } }
            }
        }
        // Too many models for 8 SMs each: no spatial partitioning at all.
        let many = (0..<17).map { model("m\($0)", parameters: 1) }
        #expect(PartitionLayout.layouts(policy: .spatial, multiprocessorCount: 132, models: many, expectedRates: [:]) == [[132]])
    }

    @Test func muxSplitsAreGroupMultiplesWithGrowingPrefillShare() {
        #expect(PartitionLayout.muxSplits(multiprocessorCount: 132) == [[64, 64], [80, 48], [96, 32], [112, 16]])
        #expect(PartitionLayout.muxSplits(multiprocessorCount: 16) == [[8, 8]], "duplicates dropped")
        #expect(PartitionLayout.muxSplits(multiprocessorCount: 8).isEmpty)
        let layouts = PartitionLayout.layouts(policy: .mux, multiprocessorCount: 144, models: [], expectedRates: [:])
        #expect(layouts.first == [144])
        for split in layouts.dropFirst() {
            #expect(split.count == 2 && split.allSatisfy { $0 % 8 == 0 && $0 >= 8 } && split.reduce(0, +) <= 144)
        }
        #expect(layouts.dropFirst().map { $0[0] } == layouts.dropFirst().map { $0[0] }.sorted())
    }

    @Test func muxSplitCostWeighsPrefillAgainstDecode() {
        // Prefill time goes as 1 / SMs; decode keeps its speed down to half the device.
        #expect(PartitionLayout.muxSplitCost(waitingPrefillRequests: 1, decodingSequences: 0, multiprocessorCount: 128,
                                             prefillSMs: 64, decodeSMs: 64) == 2)
        #expect(PartitionLayout.muxSplitCost(waitingPrefillRequests: 0, decodingSequences: 3, multiprocessorCount: 128,
                                             prefillSMs: 64, decodeSMs: 64) == 3)
        #expect(PartitionLayout.muxSplitCost(waitingPrefillRequests: 0, decodingSequences: 1, multiprocessorCount: 128,
                                             prefillSMs: 96, decodeSMs: 32) == 2)
    }

    /// Latency weights multiply the two terms of the cost (132 SMs: splits [64, 64], [80, 48],
    /// [96, 32], [112, 16]). Two prompts and two decoding sequences pick 80 prefill SMs; doubling
    /// the decode term picks 64, tripling the prefill term 96; weights of 1 change nothing.
    @Test func latencyWeightsMoveTheSplitTowardTheLaggingPhase() throws {
        let partitionings = [[132]] + PartitionLayout.muxSplits(multiprocessorCount: 132)
        func prefillSMs(prefillWeight: Double = 1, decodeWeight: Double = 1) throws -> Int {
            let index = try #require(PartitionLayout.bestMuxSplit(partitionings: partitionings, waitingPrefillRequests: 2, decodingSequences: 2,
                                                                  prefillWeight: prefillWeight, decodeWeight: decodeWeight))
            return partitionings[index][0]
        }
        #expect(try prefillSMs() == 80)
        #expect(try prefillSMs(decodeWeight: 2) == 64)
        #expect(try prefillSMs(prefillWeight: 3) == 96)
        #expect(try prefillSMs(prefillWeight: 2, decodeWeight: 2) == 80)
    }

    @Test func muxSplitChoiceFollowsTheLoad() throws {
        let partitionings = [[132]] + PartitionLayout.muxSplits(multiprocessorCount: 132)
        func prefillSMs(waiting: Int, decoding: Int) throws -> Int {
            let index = try #require(PartitionLayout.bestMuxSplit(partitionings: partitionings, waitingPrefillRequests: waiting,
                                                                  decodingSequences: decoding))
            return partitionings[index][0]
        }
        // Only prompts waiting: the largest prefill share; many decoding sequences: the smallest.
        #expect(try prefillSMs(waiting: 4, decoding: 0) == 112)
        #expect(try prefillSMs(waiting: 1, decoding: 20) == 64)
        // More decoding sequences never shrink the decode share; a longer queue never shrinks prefill's.
        for waiting in 1...12 {
            var last = Int.max
            for decoding in 0...40 {
                let share = try prefillSMs(waiting: waiting, decoding: decoding)
                #expect(share <= last, "waiting \(waiting) decoding \(decoding)")
                last = share
            }
        }
        for decoding in 0...12 {
            var last = 0
            for waiting in 1...40 {
                let share = try prefillSMs(waiting: waiting, decoding: decoding)
                #expect(share >= last, "waiting \(waiting) decoding \(decoding)")
                last = share
            }
        }
        #expect(PartitionLayout.bestMuxSplit(partitionings: [[132]], waitingPrefillRequests: 1, decodingSequences: 1) == nil)
    }
}

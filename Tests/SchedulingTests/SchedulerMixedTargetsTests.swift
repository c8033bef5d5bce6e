import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// Latency targets under `mux` with mixed jobs: the prompt chunk of a model's mixed job follows
/// how its tokens keep to their per-token target, and a hybrid unit's split weighs the targets as
/// `split` does. The test plays the asynchronous executor and the clock.
@Suite struct SchedulerMixedTargetsTests {
    let a = ModelID("a"), b = ModelID("b")

    func mixedScheduler(budget: Int = 256, targets: [ModelID: LatencyTargets], mixedPromptTokenLimit: Int? = nil) -> Scheduler {
        let models = [a, b].map {
            ModelDescriptor(id: $0, contextLength: 8192, vocabularySize: 100, eosTokenIDs: [],
                            kvShape: KVCacheShape(layerCount: 1, kvHeadCount: 1, headDim: 1, bytesPerElement: 4))
        }
        let limits = SchedulerLimits(maxTokensPerStep: budget, maxSequencesPerStep: 16, quotaInterval: 0, mixesMuxPhases: true,
                                     mixedPromptTokenLimit: mixedPromptTokenLimit, latencyTargets: targets)
        return Scheduler(policy: .mux, limits: limits, kvCache: KVCacheManager(pageCount: 2000, tokensPerPageByModel: [a: 8, b: 8]),
                         partitionings: PartitionLayout.layouts(policy: .mux, multiprocessorCount: 132, models: models, expectedRates: [:]),
                         asynchronous: true)
    }

    func add(_ id: UInt64, _ model: ModelID, prompt: Int, arrival: Double = 0, to s: inout Scheduler) throws {
        try s.add(SequenceState(id: SequenceID(id), model: model, promptTokens: Array(repeating: 1, count: prompt),
                                parameters: SamplingParameters(maxTokens: 1000), arrivalTime: arrival))
    }

    /// Plans at `now`, completes every job (token 5 for each sample) and returns the prompt
    /// tokens (every token of a sequence not yet decoding) that `model`'s job carried.
    @discardableResult
    func step(_ s: inout Scheduler, now: Double, model: ModelID) -> Int {
        let plan = s.schedule(now: now)
        var promptTokens = 0
        for job in plan.jobs {
            if job.model == model {
                promptTokens += job.sequences.filter { $0.queryCount > 1 || s.sequences[$0.sequenceID]?.isDecoding == false }
                    .map(\.queryCount).reduce(0, +)
            }
            var result = StepResult()
            for sequence in job.sequences where sequence.sample != nil {
                result.samples[sequence.sequenceID] = SampledToken(tokenID: 5, logprob: 0)
            }
            _ = s.complete(ticket: job.ticket, result: result)
        }
        return promptTokens
    }

    /// One sequence of `a` decoding, then a prompt of 6,000 tokens: the mixed jobs launch 0.1 s
    /// apart against a 0.01 s per-token target, so each measured interval halves the prompt
    /// chunk of the next job down to the floor; once they launch 5 ms apart the chunk grows back
    /// by a quarter a job (at least the floor) until the cap is dropped at the whole budget.
    @Test func aMixedJobsPromptChunkFollowsItsModelsPerTokenTarget() throws {
        var s = mixedScheduler(targets: [a: LatencyTargets(timePerOutputToken: 0.01)])
        try add(1, a, prompt: 4, to: &s)
        step(&s, now: 0, model: a)                                   // 1 decodes from here
        try add(2, a, prompt: 6000, to: &s)
        let slow = (1...6).map { step(&s, now: 0.1 * Double($0), model: a) }
        // The first launch has no interval yet; the cap moves after each launch it measures.
        #expect(slow == [255, 255, 128, 64, 32, 32])
        #expect(s.mixedPromptTokenCap[a] == Scheduler.minimumMixedPromptTokens)
        let fast = (1...8).map { step(&s, now: 0.6 + 0.005 * Double($0), model: a) }
        #expect(fast == [32, 64, 96, 128, 160, 200, 250, 255])
        #expect(s.mixedPromptTokenCap[a] == nil, "within the target at the whole budget: no cap")
        #expect(s.decodeTokenInterval[a].map { abs($0 - 0.005) < 1e-9 } == true, "a mixed job with decode tokens counts as a decode launch")
    }

    /// Without a per-token target nothing is capped, whatever the intervals; another model's
    /// target does not cap this one.
    @Test func noPerTokenTargetNoCap() throws {
        for targets in [[:], [a: LatencyTargets(timeToFirstToken: 0.01)], [b: LatencyTargets(timePerOutputToken: 0.01)]] {
            var s = mixedScheduler(targets: targets)
            try add(1, a, prompt: 4, to: &s)
            step(&s, now: 0, model: a)
            try add(2, a, prompt: 6000, to: &s)
            let chunks = (1...5).map { step(&s, now: 0.1 * Double($0), model: a) }
            #expect(chunks == Array(repeating: 255, count: 5), "targets \(targets)")
            #expect(s.mixedPromptTokenCap.isEmpty)
        }
    }

    /// With the chunk at its floor (tokens 10× slower than their target), a prompt whose wait is
    /// further past its first-token target than that (12× at 6 s against 0.5 s) gets the whole
    /// budget for the job; one less far behind (8× at 4 s) stays held.
    @Test func aPromptFurtherBehindItsFirstTokenTargetLiftsTheCap() throws {
        func chunk(at now: Double) throws -> Int {
            var s = mixedScheduler(targets: [a: LatencyTargets(timeToFirstToken: 0.5, timePerOutputToken: 0.01)])
            try add(1, a, prompt: 4, to: &s)
            step(&s, now: 0, model: a)
            try add(2, a, prompt: 6000, to: &s)
            for index in 1...6 { step(&s, now: 0.1 * Double(index), model: a) }
            #expect(s.mixedPromptTokenCap[a] == Scheduler.minimumMixedPromptTokens)
            return step(&s, now: now, model: a)
        }
        #expect(try chunk(at: 4) == 32)
        #expect(try chunk(at: 6) == 255)
    }

    /// `hybrid`: a long prompt's split leans toward prefill once the prompt is past its
    /// first-token target, as `split`'s does (`muxSplitLeansTowardPrefillForPromptsPastTheirFirstTokenTarget`).
    @Test func hybridSplitWeighsFirstTokenTargets() throws {
        func prefillSMs(_ targets: [ModelID: LatencyTargets]) throws -> Int {
            var s = mixedScheduler(budget: 64, targets: targets, mixedPromptTokenLimit: 8)
            for id in 1...4 { try add(UInt64(id), b, prompt: 4, to: &s) }
            step(&s, now: 0, model: b)                              // b: 4 sequences decoding
            try add(10, a, prompt: 20, to: &s)
            let plan = s.schedule(now: 2)
            let long = try #require(plan.jobs.first { $0.model == a && $0.onPrefillLane })
            return s.partitionings[long.partitioning][0]
        }
        let without = try prefillSMs([:])
        #expect(try prefillSMs([a: LatencyTargets(timeToFirstToken: 0.1)]) > without)
        #expect(try prefillSMs([a: LatencyTargets(timeToFirstToken: 5)]) == without)
    }
}

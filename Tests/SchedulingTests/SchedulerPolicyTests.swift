import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// Step composition under each policy, driven directly as a synchronous executor would (no
/// executor: every job completes within the step with token 5 for each sampling sequence).
@Suite struct SchedulerPolicyTests {
    let a = ModelID("a"), b = ModelID("b")

    func scheduler(_ policy: SchedulingPolicy, pages: Int = 100, maxTokens: Int = 64) -> Scheduler {
        Scheduler(policy: policy, limits: SchedulerLimits(maxTokensPerStep: maxTokens, maxSequencesPerStep: 16, quotaInterval: 0),
                  kvCache: KVCacheManager(pageCount: pages, tokensPerPageByModel: [a: 8, b: 8]))
    }

    func sequence(_ id: UInt64, _ model: ModelID, prompt: Int, maxTokens: Int = 4) -> SequenceState {
        SequenceState(id: SequenceID(id), model: model, promptTokens: Array(repeating: 1, count: prompt),
                      parameters: SamplingParameters(maxTokens: maxTokens))
    }

    /// Runs one step and gives every sampling sequence token 5.
    func step(_ scheduler: inout Scheduler) -> StepPlan {
        let plan = scheduler.schedule()
        var result = StepResult()
        for job in plan.jobs { for s in job.sequences where s.sample != nil { result.samples[s.sequenceID] = SampledToken(tokenID: 5, logprob: 0) } }
        _ = scheduler.commit(result)
        return plan
    }

    @Test func temporalRunsOneModelPerStepTakingTurns() throws {
        var s = scheduler(.temporal)
        try s.add(sequence(1, b, prompt: 10))
        try s.add(sequence(2, a, prompt: 10))
        let first = step(&s).jobs.map(\.model)
        let second = step(&s).jobs.map(\.model)
        let third = step(&s).jobs.map(\.model)
        #expect(first.count == 1 && second.count == 1 && third.count == 1, "one model per step")
        #expect(Set(first + second) == [a, b], "both models get a turn")
        #expect(third == first, "turns alternate")
        // A model without live sequences gets no turn.
        s.finish(SequenceID(1), reason: .stop)
        #expect(step(&s).jobs.map(\.model) == [a])
        #expect(step(&s).jobs.map(\.model) == [a])
    }

    @Test func muxSplitsPrefillAndDecodeJobsAndPutsPrefillFirst() throws {
        let layouts = PartitionLayout.layouts(policy: .mux, multiprocessorCount: 132, models: [], expectedRates: [:])
        var s = Scheduler(policy: .mux, limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 16, quotaInterval: 0),
                          kvCache: KVCacheManager(pageCount: 100, tokensPerPageByModel: [a: 8, b: 8]), partitionings: layouts)
        try s.add(sequence(1, a, prompt: 10))
        let lone = step(&s)  // a prefilled, now decoding
        #expect(lone.jobs.map { [$0.partitioning, $0.partition] } == [[0, 0]], "a prefill with no decode work has the whole device")
        try s.add(sequence(2, b, prompt: 10))
        try s.add(sequence(3, a, prompt: 6))
        let plan = step(&s)
        #expect(plan.jobs.first?.phase == .prefill)
        let split = try #require(plan.jobs.first?.partitioning)
        #expect(split > 0)
        #expect(plan.jobs.contains { $0.model == a && $0.phase == .decode && $0.partitioning == split && $0.partition == 1 })
        #expect(plan.jobs.filter { $0.phase == .prefill }.allSatisfy { $0.partitioning == split && $0.partition == 0 })
        // Without granted partitionings every job runs on the whole device.
        var plain = scheduler(.mux)
        try plain.add(sequence(1, a, prompt: 10))
        _ = step(&plain)
        try plain.add(sequence(2, b, prompt: 10))
        #expect(step(&plain).jobs.allSatisfy { $0.partitioning == 0 && $0.partition == 0 })
    }

    @Test func muxRoundRobinGivesEachModelFirstCallOnPrefill() throws {
        // Budget 12 tokens: only one 12-token prompt's chunk fits per step, so the first model
        // served alternates between a and b.
        var s = scheduler(.mux, maxTokens: 12)
        for id in 1...4 { try s.add(sequence(UInt64(id), id % 2 == 0 ? b : a, prompt: 12, maxTokens: 1)) }
        var firstModels: [ModelID] = []
        for _ in 0..<4 {
            let plan = step(&s)
            if let prefill = plan.jobs.first(where: { $0.phase == .prefill }) { firstModels.append(prefill.model) }
        }
        #expect(firstModels.count == 4 && Set(firstModels.prefix(2)) == [a, b])
    }

    @Test func spatialGivesEachModelItsOwnTokenShare() throws {
        var s = scheduler(.spatial, maxTokens: 32)
        try s.add(sequence(1, a, prompt: 100, maxTokens: 1))
        try s.add(sequence(2, b, prompt: 100, maxTokens: 1))
        let plan = step(&s)
        // Equal rates and KV sizes: 16 tokens each, even though a alone could use all 32.
        #expect(plan.jobs.count == 2 && plan.jobs.allSatisfy { $0.tokenIDs.count == 16 })
    }

    @Test func muxNeverStarvesAnUnpopularModel() throws {
        var s = scheduler(.mux, pages: 40, maxTokens: 32)
        var next: UInt64 = 1
        for _ in 0..<30 { try s.add(sequence(next, a, prompt: 20, maxTokens: 8)); next += 1 }
        try s.add(sequence(999, b, prompt: 20, maxTokens: 8))
        var steps = 0
        while s.sequences[SequenceID(999)].map({ $0.outputTokens.count < 8 }) ?? false {
            _ = step(&s)
            for (id, state) in s.sequences where state.outputTokens.count >= state.parameters.maxTokens { s.finish(id, reason: .length) }
            steps += 1
            try #require(steps < 200, "b starved")
        }
        #expect(s.sequences[SequenceID(999)] == nil || s.sequences[SequenceID(999)]!.outputTokens.count >= 8)
    }
}

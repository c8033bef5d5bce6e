import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Testing

/// The CPU engine against transformers fp32 on random-weight checkpoints of every architecture
/// and stored dtype: greedy tokens identical, log-probabilities within 1e-3.
@Suite struct GoldenTests {
    static let greedyTop5 = SamplingParameters(logprobs: 5, maxTokens: 12, stopAtEOS: false)

    func expectMatches(_ outputs: [[SampledToken]], _ golden: GoldenFile) {
        for (output, reference) in zip(outputs, golden.cases) {
            let label = "\(golden.model), prompt of \(reference.promptTokenIDs.count) tokens"
            #expect(output.map(\.tokenID) == reference.steps.map(\.tokenID), "\(label): greedy tokens differ")
            for (step, (token, expected)) in zip(output, reference.steps).enumerated() {
                #expect(abs(token.logprob - expected.logprob) < 1e-3, "\(label), step \(step): logprob \(token.logprob) vs \(expected.logprob)")
                for entry in expected.top {
                    let mine = token.top.first { $0.tokenID == entry.tokenID }
                    #expect(mine != nil && abs(mine!.logprob - entry.logprob) < 1e-3,
                            "\(label), step \(step): top token \(entry.tokenID) logprob \(String(describing: mine?.logprob)) vs \(entry.logprob)")
                }
            }
        }
    }

    @Test(arguments: Golden.names)
    func batchedGreedyMatchesTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        let harness = try EngineHarness(checkpoint: checkpoint)
        let outputs = try harness.run(golden.cases.map(\.promptTokenIDs), parameters: Self.greedyTop5)
        expectMatches(outputs, golden)
    }

    /// Pipelined steps (`ModelRunner.begin`/`end`, decode steps planned ahead of their inputs):
    /// the same tokens and log-probabilities as transformers.
    @Test(arguments: Golden.names)
    func pipelinedStepsMatchTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        let harness = try EngineHarness(checkpoint: checkpoint, pipelining: true)
        let outputs = try harness.run(golden.cases.map(\.promptTokenIDs), parameters: Self.greedyTop5)
        expectMatches(outputs, golden)
        let state = harness.engine.schedulerState
        #expect(state.plannedAheadTotal > 0, "no step was planned ahead")
        #expect(state.kvCache.freePageCount == state.kvCache.pool.pageCount && state.kvCache.isConsistent())
    }

    @Test(arguments: Golden.names)
    func aloneAndChunkedPrefillMatchTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        // A 48-token step budget cuts the long prompts into chunks.
        let harness = try EngineHarness(checkpoint: checkpoint, limits: SchedulerLimits(maxTokensPerStep: 48, maxSequencesPerStep: 8))
        let outputs = try golden.cases.map { try harness.run([$0.promptTokenIDs], parameters: Self.greedyTop5)[0] }
        expectMatches(outputs, golden)
    }

    @Test func preemptionByRecomputeKeepsOutputs() throws {
        let (checkpoint, golden) = try Golden.load("llama-bf16")
        let prompts = golden.cases.map(\.promptTokenIDs)
        // 2 layers × 2 kv heads × 16 dims × 2 × 4 bytes = 512 bytes per token; 16 tokens a page.
        // 22 pages (352 tokens) cannot hold all four sequences (~400 tokens with the long one plus
        // decoders), so the newest are preempted and recomputed.
        let harness = try EngineHarness(checkpoint: checkpoint, kvCacheBytes: 22 * 16 * 512,
                                        limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 8))
        let many = prompts + prompts.map { Array($0.prefix(30)) } + prompts
        let outputs = try harness.run(many, parameters: Self.greedyTop5)
        let state = harness.engine.schedulerState
        #expect(state.kvCache.freePageCount == state.kvCache.pool.pageCount, "pages leaked")
        #expect(state.kvCache.isConsistent())
        #expect(state.preemptionTotal > 0, "the pool was meant to force preemption")
        #expect(state.preemptedTokenTotal > 0, "preempted sequences had cached tokens to recompute")
        expectMatches(Array(outputs.prefix(4)), golden)
        expectMatches(Array(outputs.suffix(4)), golden)
    }
}

/// Two colocated real models in one unit and one small KV pool, under every policy: each
/// request's greedy output still equals transformers' (and so its solo output), with preemption.
@Suite struct ColocatedGoldenTests {
    /// How the unit runs its jobs.
    enum Execution: CaseIterable {
        /// The synchronous runner.
        case direct
        /// The asynchronous executor over a CPU backend that emulates 132 SMs, so jobs carry the
        /// policy's SM partitions and go through launch/collect as on a GPU.
        case partitioned
        /// The same with prompt jobs launched one layer at a time, other jobs launched and
        /// collected between their slices.
        case partitionedSliced
    }

    @Test(arguments: SchedulingPolicy.allCases, Execution.allCases)
    func colocatedModelsMatchTransformersUnderEveryPolicy(_ policy: SchedulingPolicy, execution: Execution) throws {
        try checkColocated(policy, execution: execution, limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 8, quotaInterval: 0))
    }

    /// The temporal baseline as MuxServe ran it: prompt and decode work of a model in separate jobs.
    @Test(arguments: Execution.allCases)
    func temporalWithSeparatePhasesMatchesTransformers(_ execution: Execution) throws {
        try checkColocated(.temporal, execution: execution, limits: SchedulerLimits(
            maxTokensPerStep: 64, maxSequencesPerStep: 8, quotaInterval: 0, separatesTemporalPhases: true))
    }

    /// `mux` with each model's phases in one job and the models' jobs side by side on the whole
    /// device (the `mux-mixed` experiment).
    @Test(arguments: Execution.allCases)
    func muxWithMixedPhasesMatchesTransformers(_ execution: Execution) throws {
        try checkColocated(.mux, execution: execution, limits: SchedulerLimits(
            maxTokensPerStep: 64, maxSequencesPerStep: 8, quotaInterval: 0, mixesMuxPhases: true))
    }

    /// `mux-hybrid` with a limit of 4 prompt tokens, so the fixtures' prompts go to the prefill
    /// lane on a split and their decode tokens to mixed jobs beside it.
    @Test(arguments: Execution.allCases)
    func muxHybridMatchesTransformers(_ execution: Execution) throws {
        try checkColocated(.mux, execution: execution, limits: SchedulerLimits(
            maxTokensPerStep: 64, maxSequencesPerStep: 8, quotaInterval: 0, mixesMuxPhases: true, mixedPromptTokenLimit: 4))
    }

    /// `mux` with latency targets far below what the CPU reaches (1 µs), so both terms of every
    /// split's cost are weighted: the split moves, the outputs do not.
    @Test(arguments: [Execution.partitioned, .partitionedSliced])
    func muxWithLatencyTargetsMatchesTransformers(_ execution: Execution) throws {
        let tight = LatencyTargets(timeToFirstToken: 1e-6, timePerOutputToken: 1e-6)
        try checkColocated(.mux, execution: execution, limits: SchedulerLimits(
            maxTokensPerStep: 64, maxSequencesPerStep: 8, quotaInterval: 0,
            latencyTargets: [ModelID("llama"): tight, ModelID("qwen"): tight]))
    }

    private func checkColocated(_ policy: SchedulingPolicy, execution: Execution, limits: SchedulerLimits) throws {
        let partitioned = execution != .direct
        let (llama, llamaGolden) = try Golden.load("llama-bf16")
        let (qwen, qwenGolden) = try Golden.load("qwen2-bf16")
        let a = ModelID("llama"), b = ModelID("qwen")
        // Both models store 512 KV bytes per token (16 tokens a page). 44 pages: under `spatial`
        // each model's share (22 pages) still fits its longest request (312 tokens, 20 pages).
        let backend = CPUBackend(emulatedMultiprocessors: partitioned ? 132 : 0)
        let runner = try ModelRunner(checkpoints: [(a, llama), (b, qwen)], backend: backend, kvCacheBytes: 44 * 16 * 512)
        let sliced = execution == .partitionedSliced
        let executor: any ModelExecutor = partitioned ? try #require(PartitionedRunner.wrapping(runner, sliceLayers: sliced ? 1 : 0)) : runner
        #expect((PartitionedRunner.wrapping(runner) != nil) == partitioned)
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy, limits: limits)
        var expected: [SequenceID: [TokenID]] = [:]
        for _ in 0..<2 {
            for (model, golden) in [(a, llamaGolden), (b, qwenGolden)] {
                for reference in golden.cases {
                    let id = try engine.add(GenerationRequest(model: model, promptTokens: reference.promptTokenIDs,
                                                              parameters: GoldenTests.greedyTop5))
                    expected[id] = reference.steps.map(\.tokenID)
                }
            }
        }
        var outputs: [SequenceID: [TokenID]] = [:]
        var steps = 0
        var decodeIntervalsSeen = false
        while engine.hasWork {
            decodeIntervalsSeen = decodeIntervalsSeen || !engine.schedulerState.decodeTokenInterval.isEmpty
            for event in engine.step() {
                if let token = event.token { outputs[event.sequenceID, default: []].append(token.tokenID) }
                #expect(event.finishReason != .error, "\(event.errorMessage ?? "")")
            }
            steps += 1
            try #require(steps < 20_000)
        }
        for (id, tokens) in expected { #expect(outputs[id] == tokens, "\(policy): \(id) differs from transformers") }
        if sliced { #expect(try #require(executor as? PartitionedRunner).slicedJobCount > 0, "no prompt job was launched in slices") }
        let state = engine.schedulerState
        #expect(state.kvCache.freePageCount == state.kvCache.pool.pageCount && state.kvCache.isConsistent())
        #expect(state.preemptionTotal > 0, "the pool was meant to force preemption under \(policy)")
        if !limits.latencyTargets.isEmpty { #expect(decodeIntervalsSeen, "no decode token interval was measured to weigh") }
    }
}

/// The CPU path with q/k/v and gate/up copied into fused matrices gives the same answers.
@Suite struct FusedProjectionGoldenTests {
    @Test(arguments: Golden.names)
    func fusedProjectionsMatchTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        let harness = try EngineHarness(checkpoint: checkpoint, backend: CPUBackend(fuseProjections: true))
        let outputs = try harness.run(golden.cases.map(\.promptTokenIDs), parameters: GoldenTests.greedyTop5)
        GoldenTests().expectMatches(outputs, golden)
    }
}

import Compute
import KVMemory
import LLMuxCore
@testable import Models
import Scheduling
import Testing

/// On a GPU, two jobs of one model can run at once on different SM partitions: its long prompt on
/// the unit's prefill lane beside its mixed job (`--mux-jobs hybrid`) or its decode job (split).
/// They must not compute in the same activation buffers. (Under `hybrid` they did: the prefill
/// lane's job and a mixed job with prompt tokens were both prefill jobs and shared them, and
/// `bench mux --check` with one model found every first token wrong on an H100.) The CPU runs
/// jobs one after the other, so this checks the buffers each job is given, not a race.
@Suite struct ActivationBufferTests {
    static let model = ModelID("m")

    /// The two jobs the scheduler plans for a long and a short prompt of one model under `mux`,
    /// run through the model: the prefill lane's job and the other one use different buffers.
    @Test(arguments: [false, true])
    func jobsThatCanRunAtOnceUseDifferentBuffers(hybrid: Bool) throws {
        let (checkpoint, golden) = try Golden.load("llama-bf16")
        let runner = try ModelRunner(checkpoints: [(Self.model, checkpoint)], backend: CPUBackend(emulatedMultiprocessors: 132),
                                     kvCacheBytes: 4 << 20)
        var limits = SchedulerLimits(maxTokensPerStep: 512, maxSequencesPerStep: 8, quotaInterval: 0)
        if hybrid {
            limits.mixesMuxPhases = true
            limits.mixedPromptTokenLimit = 8
        }
        var scheduler = Scheduler(policy: .mux, limits: limits,
                                  kvCache: KVCacheManager(pageCount: runner.pageCount,
                                                          tokensPerPageByModel: [Self.model: runner.tokensPerPage(for: Self.model)]),
                                  partitionings: PartitionLayout.layouts(policy: .mux, multiprocessorCount: 132, models: runner.models,
                                                                         expectedRates: [:]),
                                  asynchronous: true)
        let prompts = golden.cases.map(\.promptTokenIDs).sorted { $0.count < $1.count }
        let (short, long) = (Array(prompts.first!.prefix(4)), prompts.last!)
        try #require(long.count > 8)
        func add(_ id: UInt64, _ prompt: [TokenID]) throws {
            try scheduler.add(SequenceState(id: SequenceID(id), model: Self.model, promptTokens: prompt,
                                            parameters: SamplingParameters(maxTokens: 4)))
        }
        try add(1, short)
        if !hybrid {
            // Split: the short prompt's first job, then it decodes beside the long prompt.
            for job in scheduler.schedule().jobs {
                _ = try runner.forward(job)
                _ = scheduler.complete(ticket: job.ticket, result: StepResult(samples: [SequenceID(1): SampledToken(tokenID: 3, logprob: 0)]))
            }
        }
        try add(2, long)
        let plan = scheduler.schedule()
        let prefillLane = try #require(plan.jobs.first { $0.onPrefillLane })
        let beside = try #require(plan.jobs.first { !$0.onPrefillLane })
        #expect(plan.jobs.count == 2 && beside.phase == (hybrid ? .prefill : .decode))
        for job in plan.jobs { _ = try runner.forward(job) }
        let laneBuffers = try #require(runner.activationAddress(for: prefillLane))
        let besideBuffers = try #require(runner.activationAddress(for: beside))
        #expect(laneBuffers != besideBuffers, "the prefill lane's job and the job beside it share activation buffers")
        // The other lane's next job reuses its buffers (one job of a lane at a time).
        var next = beside
        next.ticket += 100
        #expect(runner.activationAddress(for: next) == besideBuffers)
    }
}

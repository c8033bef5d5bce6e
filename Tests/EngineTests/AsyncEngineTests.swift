import Engine
import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// The engine over an asynchronous executor: jobs launched on partitions, collected in any order.
@Suite struct AsyncEngineTests {
    static let models: [(ModelID, tokensPerPage: Int)] = [(ModelID("a"), 4), (ModelID("b"), 7)]

    func request(_ model: ModelID, prompt: Int, maxTokens: Int, offset: Int = 0) -> GenerationRequest {
        GenerationRequest(model: model, promptTokens: (0..<prompt).map { TokenID(($0 * 13 + offset) % 900 + 1) },
                          parameters: SamplingParameters(maxTokens: maxTokens))
    }

    /// Steps a synchronous engine until `id` has `count` tokens or ends; returns its tokens.
    func soloTokens(_ request: GenerationRequest) throws -> [TokenID] {
        let engine = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 200), tokenizers: [:])
        let id = try engine.add(request)
        var tokens: [TokenID] = []
        while engine.hasWork { for event in engine.step() where event.sequenceID == id { if let t = event.token { tokens.append(t.tokenID) } } }
        return tokens
    }

    @Test func engineRequestsThePolicysPartitionings() {
        for policy in SchedulingPolicy.allCases {
            let executor = AsyncFakeExecutor(models: Self.models, pageCount: 100)
            let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy)
            let expected = PartitionLayout.layouts(policy: policy, multiprocessorCount: 132, models: executor.models, expectedRates: [:])
            #expect(executor.requestedPartitions == expected)
            #expect(engine.partitionings == expected && engine.schedulerState.partitionings == expected)
        }
        let unpartitioned = AsyncFakeExecutor(models: Self.models, pageCount: 100, multiprocessorCount: 0)
        let engine = EngineCore(executor: unpartitioned, tokenizers: [:])
        #expect(unpartitioned.requestedPartitions == nil && engine.partitionings.isEmpty)
    }

    @Test func muxDecodesOfOneModelGoOnWhileAnotherModelsPrefillRuns() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 200)
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: .mux,
                                limits: SchedulerLimits(maxTokensPerStep: 256, maxSequencesPerStep: 16))
        let shortRequest = request("b", prompt: 5, maxTokens: 12)
        let b = try engine.add(shortRequest)
        _ = engine.step()
        let lone = try #require(executor.pendingJob("b", .prefill))
        #expect([lone.partitioning, lone.partition] == [0, 0])
        executor.finish([lone.ticket])
        var bTokens = engine.step().filter { $0.sequenceID == b }.compactMap { $0.token?.tokenID }
        // A long prompt of a goes to the prefill lane and stays there.
        let longRequest = request("a", prompt: 200, maxTokens: 3)
        let a = try engine.add(longRequest)
        _ = engine.step()
        let prefill = try #require(executor.pendingJob("a", .prefill))
        #expect(prefill.partitioning > 0 && prefill.partition == 0)
        var decodeJobs = 0
        while let decode = executor.pendingJob("b", .decode) {
            #expect([decode.partitioning, decode.partition] == [prefill.partitioning, 1])
            decodeJobs += 1
            executor.finish([decode.ticket])
            // One step collects the finished job, the next launches b's next decode job.
            for _ in 0..<2 {
                let events = engine.step()
                #expect(!events.contains { $0.sequenceID == a })
                bTokens += events.filter { $0.sequenceID == b }.compactMap { $0.token?.tokenID }
            }
        }
        #expect(decodeJobs == 11 && bTokens.count == 12, "b finished while a's prefill was in flight")
        #expect(bTokens == (try soloTokens(shortRequest)))
        #expect(engine.hasWork && executor.pending.map(\.ticket) == [prefill.ticket])
        // Nothing new can start: the step waits for the executor.
        let waitsBefore = executor.waits
        #expect(engine.step().isEmpty && executor.waits == waitsBefore + 1)
        executor.finish([prefill.ticket])
        var aTokens: [TokenID] = []
        executor.mode = .random(seed: 3)
        while engine.hasWork { aTokens += engine.step().filter { $0.sequenceID == a }.compactMap { $0.token?.tokenID } }
        #expect(aTokens == (try soloTokens(longRequest)))
        #expect(engine.schedulerState.kvCache.freePageCount == 200)
    }

    @Test func spatialModelsAdvanceIndependently() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 200)
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: .spatial)
        let a = try engine.add(request("a", prompt: 30, maxTokens: 4))
        let b = try engine.add(request("b", prompt: 3, maxTokens: 6))
        _ = engine.step()
        let jobA = try #require(executor.pending.first { $0.model == "a" })
        #expect([jobA.partitioning, jobA.partition] == [1, 0])
        var bCount = 0
        while let jobB = executor.pending.first(where: { $0.model == "b" }) {
            #expect([jobB.partitioning, jobB.partition] == [1, 1])
            executor.finish([jobB.ticket])
            for _ in 0..<2 { bCount += engine.step().filter { $0.sequenceID == b && $0.token != nil }.count }
        }
        #expect(bCount == 6 && engine.schedulerState.sequences[a] != nil)
        executor.mode = .random(seed: 9)
        while engine.hasWork { _ = engine.step() }
    }

    @Test func temporalRunsOneJobAtATime() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 200, mode: .random(seed: 5))
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: .temporal)
        for index in 0..<6 { try engine.add(request(index % 2 == 0 ? "a" : "b", prompt: 5 + index, maxTokens: 5)) }
        var steps = 0
        while engine.hasWork {
            _ = engine.step()
            #expect(executor.pending.count <= 1)
            steps += 1
            try #require(steps < 1000)
        }
        #expect(executor.launched.allSatisfy { $0.partitioning == 0 && $0.partition == 0 })
    }

    @Test func abortedSequenceInFlightKeepsItsPagesUntilItsJobEnds() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 50)
        let engine = EngineCore(executor: executor, tokenizers: [:])
        let id = try engine.add(request("a", prompt: 20, maxTokens: 10))
        _ = engine.step()
        #expect(engine.abort(id)?.finishReason == .abort)
        #expect(engine.schedulerState.kvCache.freePageCount == 45 && engine.hasWork)
        executor.finish(executor.pending.map(\.ticket))
        #expect(engine.step().isEmpty, "no event after the abort")
        #expect(engine.schedulerState.kvCache.freePageCount == 50 && !engine.hasWork)
    }

    @Test func aFailedJobFailsOnlyItsOwnSequences() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 200, mode: .random(seed: 2))
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: .mux)
        let healthy = request("b", prompt: 4, maxTokens: 8)
        let a = try engine.add(request("a", prompt: 4, maxTokens: 8))
        let b = try engine.add(healthy)
        var events: [SequenceEvent] = []
        for _ in 0..<3 { events += engine.step() }
        executor.failNextJobOf = ["a"]
        while engine.hasWork { events += engine.step() }
        let aEnd = try #require(events.last { $0.sequenceID == a })
        #expect(aEnd.finishReason == .error && aEnd.errorMessage?.contains("failed on its partition") == true)
        #expect(events.filter { $0.sequenceID == b }.compactMap { $0.token?.tokenID } == (try soloTokens(healthy)))
        #expect(events.last { $0.sequenceID == b }?.finishReason == .length)
        #expect(engine.schedulerState.kvCache.freePageCount == 200)
    }

    @Test func aLaunchThatThrowsFailsThePlansSequences() throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 200, mode: .random(seed: 4))
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: .spatial)
        let a = try engine.add(request("a", prompt: 4, maxTokens: 3))
        let b = try engine.add(request("b", prompt: 4, maxTokens: 3))
        executor.failNextLaunch = true
        let events = engine.step()
        #expect(Set(events.map(\.sequenceID)) == [a, b] && events.allSatisfy { $0.finishReason == .error })
        #expect(events.allSatisfy { $0.errorMessage == "launch failed" })
        #expect(!engine.hasWork && engine.schedulerState.kvCache.freePageCount == 200)
    }

    /// Random workloads with preemption and aborts, jobs completing in random order: every
    /// sequence's greedy output equals its solo run on the synchronous executor, and no page leaks.
    @Test(arguments: SchedulingPolicy.allCases, [1, 2, 3] as [UInt64])
    func outputsMatchTheSynchronousExecutor(policy: SchedulingPolicy, seed: UInt64) throws {
        try checkRandomWorkload(policy: policy, seed: seed, limits: SchedulerLimits(maxTokensPerStep: 32, maxSequencesPerStep: 6, quotaInterval: 0))
    }

    /// The same under `mux` with mixed jobs, and with prompts past 16 tokens on the prefill lane
    /// (`hybrid`), where a model's prefill-lane job runs beside its own mixed job.
    @Test(arguments: [nil, 16] as [Int?], [1, 2, 3] as [UInt64])
    func mixedMuxOutputsMatchTheSynchronousExecutor(promptLimit: Int?, seed: UInt64) throws {
        try checkRandomWorkload(policy: .mux, seed: seed, limits: SchedulerLimits(
            maxTokensPerStep: 32, maxSequencesPerStep: 6, quotaInterval: 0, mixesMuxPhases: true, mixedPromptTokenLimit: promptLimit))
    }

    private func checkRandomWorkload(policy: SchedulingPolicy, seed: UInt64, limits: SchedulerLimits) throws {
        let workload = SchedulerPropertyTests.workload(seed: seed, count: 24)
        let expected = SchedulerPropertyTests.solo(workload)
        var random = TestRandom(seed: seed &* 31)
        let executor = AsyncFakeExecutor(models: SchedulerPropertyTests.models, pageCount: policy == .spatial ? 60 : 30,
                                         mode: .random(seed: seed &* 7))
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy, limits: limits)
        var indexByID: [SequenceID: Int] = [:]
        var outputs: [Int: [TokenID]] = [:]
        var finished: [Int: FinishReason] = [:]
        var next = 0
        var steps = 0
        while next < workload.prompts.count || engine.hasWork {
            for _ in 0..<Int(random.next() % 3) where next < workload.prompts.count {
                let id = try engine.add(GenerationRequest(model: workload.models[next], promptTokens: workload.prompts[next],
                                                          parameters: SamplingParameters(maxTokens: workload.maxTokens[next])))
                indexByID[id] = next
                next += 1
            }
            if random.next() % 12 == 0, let victim = indexByID.sorted(by: { $0.key < $1.key }).first(where: { finished[$0.value] == nil })?.key {
                _ = engine.abort(victim)
                finished[indexByID[victim]!] = .abort
            }
            for event in engine.step() {
                let index = indexByID[event.sequenceID]!
                #expect(finished[index] == nil, "event after the end")
                if let token = event.token { outputs[index, default: []].append(token.tokenID) }
                if let reason = event.finishReason { finished[index] = reason }
            }
            let state = engine.schedulerState
            #expect(state.kvCache.isConsistent() && state.quotas.isConsistent)
            #expect(state.inFlightCount == executor.inFlightCount)
            steps += 1
            try #require(steps < 20_000, "no progress")
        }
        #expect(engine.schedulerState.kvCache.freePageCount == executor.pageCount, "pages leaked")
        #expect(finished.count == workload.prompts.count)
        #expect(engine.schedulerState.preemptionTotal > 0, "the workload was meant to force preemption")
        let splitsJobs = policy == .mux && (!limits.mixesMuxPhases || limits.mixedPromptTokenLimit != nil)
        if policy == .mux && !limits.mixesMuxPhases {
            // Other lanes' jobs are in flight when a decode finds the pool full: the sequence waits
            // for a page (holding back admissions) rather than preempting; that path is exercised.
            #expect(engine.schedulerState.pageWaitTotal > 0, "no sequence ever waited for a page")
        }
        for index in workload.prompts.indices where finished[index] != .abort {
            #expect(outputs[index] ?? [] == expected[index], "request \(index) differs from its synchronous solo run")
            #expect(finished[index] == .length)
        }
        if splitsJobs {
            #expect(executor.launched.contains { $0.phase == .prefill && $0.partitioning > 0 }, "prefill ran beside decode")
            #expect(executor.sameModelOverlaps > 0, "no model ever had two jobs in flight")
        } else {
            #expect(executor.sameModelOverlaps == 0, "\(policy) runs one job of a model at a time")
        }
        #expect(executor.sharedBufferOverlaps.isEmpty, "jobs in flight at once on one model's buffers: \(executor.sharedBufferOverlaps.prefix(3))")
    }

    @Test func unitEngineKeepsSteppingWhileJobsAreInFlight() async throws {
        let executor = AsyncFakeExecutor(models: Self.models, pageCount: 100, mode: .random(seed: 11))
        let unit = UnitEngine(core: EngineCore(executor: executor, tokenizers: [:]))
        let requests = (0..<8).map { request($0 % 2 == 0 ? "a" : "b", prompt: 3 + $0, maxTokens: 4 + $0, offset: $0) }
        let outputs = try await withThrowingTaskGroup(of: (Int, [TokenID]).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask {
                    var tokens: [TokenID] = []
                    for try await event in unit.submit(request) { if let token = event.token { tokens.append(token.tokenID) } }
                    return (index, tokens)
                }
            }
            var results: [Int: [TokenID]] = [:]
            for try await (index, tokens) in group { results[index] = tokens }
            return results
        }
        unit.shutdown()
        for (index, request) in requests.enumerated() { #expect(outputs[index] == (try soloTokens(request))) }
    }
}

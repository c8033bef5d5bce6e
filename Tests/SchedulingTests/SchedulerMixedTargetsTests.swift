import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// Latency targets under `mux` with mixed jobs: the prompt chunk of a model's mixed job is sized
/// for its per-token target from the measured cost of its jobs, and a hybrid unit's split weighs
/// the targets as `split` does. The test plays the asynchronous executor and the clock.
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
                promptTokens += job.sequences.filter { s.sequences[$0.sequenceID]?.isDecoding == false }.map(\.queryCount).reduce(0, +)
            }
            var result = StepResult()
            for sequence in job.sequences where sequence.sample != nil {
                result.samples[sequence.sequenceID] = SampledToken(tokenID: 5, logprob: 0)
            }
            _ = s.complete(ticket: job.ticket, result: result)
        }
        return promptTokens
    }

    /// `a` with one sequence decoding and a prompt of 6,000 tokens that arrived at
    /// `promptArrival`; its mixed jobs then run back to back, each taking
    /// `seconds(promptTokens)`, from `start`. Returns the scheduler, the prompt tokens of each job
    /// and its launch time.
    func runJobs(_ count: Int, targets: LatencyTargets, start: Double = 0.1, promptArrival: Double = 0,
                 seconds: (Int) -> Double) throws -> (Scheduler, [Int], [Double]) {
        var s = mixedScheduler(targets: [a: targets])
        try add(1, a, prompt: 4, to: &s)
        step(&s, now: 0, model: a)                                   // 1 decodes from here
        try add(2, a, prompt: 6000, arrival: promptArrival, to: &s)
        var now = start, chunks: [Int] = [], launches: [Double] = []
        for _ in 0..<count {
            launches.append(now)
            chunks.append(step(&s, now: now, model: a))
            now += seconds(chunks.last!)
        }
        return (s, chunks, launches)
    }

    /// Jobs that take 5 ms plus 0.1 ms a prompt token, against a per-token target of 20 ms: the
    /// first job (nothing measured) takes the whole budget and runs over; the next takes half of
    /// it; from two measurements the line is fitted and every later job carries the most prompt
    /// tokens that keep its tokens within the target (150: 5 + 15 ms).
    @Test func aMixedJobsPromptChunkKeepsItsModelsTokensWithinTarget() throws {
        let cost = { (prompt: Int) in 0.005 + 0.0001 * Double(prompt) }
        let (s, chunks, _) = try runJobs(8, targets: LatencyTargets(timePerOutputToken: 0.02), seconds: cost)
        #expect(Array(chunks.prefix(2)) == [255, 127])
        for chunk in chunks.dropFirst(2) {
            #expect((149...150).contains(chunk), "the largest chunk within the target, up to rounding: \(chunks)")
            #expect(cost(chunk) <= 0.02 + 1e-9)
        }
        let line = try #require(s.mixedJobCosts[a]?.line)
        #expect(abs(line.base - 0.005) < 1e-9 && abs(line.perToken - 0.0001) < 1e-12)
    }

    /// Without a per-token target nothing is held, however slow the jobs; another model's
    /// target does not hold this one.
    @Test func noPerTokenTargetNoCap() throws {
        for targets in [[:], [a: LatencyTargets(timeToFirstToken: 0.01)], [b: LatencyTargets(timePerOutputToken: 0.01)]] {
            var s = mixedScheduler(targets: targets)
            try add(1, a, prompt: 4, to: &s)
            step(&s, now: 0, model: a)
            try add(2, a, prompt: 6000, to: &s)
            let chunks = (1...5).map { step(&s, now: 0.1 * Double($0), model: a) }
            #expect(chunks == Array(repeating: 255, count: 5), "targets \(targets)")
        }
    }

    /// Jobs over the target whatever their prompt tokens (30 ms each): halving once shows that
    /// prompt tokens cost nothing here, so the chunk goes back to the whole budget.
    @Test func promptTokensThatCostNothingAreNotHeld() throws {
        let (_, chunks, _) = try runJobs(5, targets: LatencyTargets(timePerOutputToken: 0.02)) { _ in 0.03 }
        #expect(chunks == [255, 127, 255, 255, 255])
    }

    /// Decode tokens alone over the target (30 ms plus 0.1 ms a prompt token, target 20 ms):
    /// the chunk drops to the floor. The prompt arrived 0.4 s before the first job, against a
    /// first-token target of 0.5 s: as its wait grows past the target, its model's tokens may
    /// fall behind theirs as far (`20 ms × wait / 0.5 s`), so the chunks grow with the wait, each
    /// the largest that keeps within that, until the whole budget.
    @Test func aDelayedPromptStretchesItsModelsTokenTarget() throws {
        let cost = { (prompt: Int) in 0.03 + 0.0001 * Double(prompt) }
        let targets = LatencyTargets(timeToFirstToken: 0.5, timePerOutputToken: 0.02)
        let (_, chunks, launches) = try runJobs(30, targets: targets, start: 0.01, promptArrival: -0.4, seconds: cost)
        #expect(Array(chunks.prefix(3)) == [255, 127, Scheduler.minimumMixedPromptTokens], "\(chunks)")
        #expect(zip(chunks.dropFirst(2), chunks.dropFirst(3)).allSatisfy { $0 <= $1 }, "the chunks grow with the wait: \(chunks)")
        #expect(chunks.last == 255, "\(chunks)")
        for (chunk, launch) in zip(chunks, launches).dropFirst(2) where chunk > Scheduler.minimumMixedPromptTokens && chunk < 255 {
            let stretched = 0.02 * (launch + 0.4) / 0.5
            #expect(cost(chunk) <= stretched + 1e-9 && cost(chunk + 2) > stretched, "chunk \(chunk) at \(launch) s")
        }
        #expect(chunks.contains { $0 > Scheduler.minimumMixedPromptTokens && $0 < 255 }, "\(chunks)")
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

    /// The fit: no line while the prompt tokens hardly vary; the exact line from points on it;
    /// after sixty points of another line, that one (an earlier point keeps 0.9^60 of its weight).
    @Test func theCostLineFollowsTheLatestJobs() {
        var cost = MixedJobCost()
        for prompt in [100, 104, 100, 104] { cost.add(promptTokens: prompt, interval: 0.01) }
        #expect(cost.line == nil, "a spread of 2 tokens is below the minimum")
        cost = MixedJobCost()
        for prompt in [0, 200, 100, 300] { cost.add(promptTokens: prompt, interval: 0.005 + 0.0001 * Double(prompt)) }
        let first = cost.line
        #expect(first.map { abs($0.base - 0.005) < 1e-9 && abs($0.perToken - 0.0001) < 1e-12 } == true)
        for index in 0..<60 {
            let prompt = index % 2 == 0 ? 0 : 200
            cost.add(promptTokens: prompt, interval: 0.01 + 0.0002 * Double(prompt))
        }
        let latest = cost.line
        #expect(latest.map { abs($0.base - 0.01) < 1e-4 && abs($0.perToken - 0.0002) < 2e-6 } == true)
        #expect(cost.lastMeasured?.promptTokens == 200)
    }
}

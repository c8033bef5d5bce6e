import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// Jobs in flight on an asynchronous executor, driven directly: the test plays the executor and
/// completes jobs when and in the order it likes.
@Suite struct SchedulerLaneTests {
    let a = ModelID("a"), b = ModelID("b")

    func scheduler(_ policy: SchedulingPolicy, pages: Int = 100, maxTokens: Int = 64, maxSequences: Int = 16, multiprocessors: Int = 132,
                   separatesTemporalPhases: Bool = false, mixesMuxPhases: Bool = false, mixedPromptTokenLimit: Int? = nil,
                   latencyTargets: [ModelID: LatencyTargets] = [:]) -> Scheduler {
        let models = [a, b].map {
            ModelDescriptor(id: $0, contextLength: 4096, vocabularySize: 100, eosTokenIDs: [],
                            kvShape: KVCacheShape(layerCount: 1, kvHeadCount: 1, headDim: 1, bytesPerElement: 4))
        }
        let layouts = multiprocessors > 0
            ? PartitionLayout.layouts(policy: policy, multiprocessorCount: multiprocessors, models: models, expectedRates: [:]) : []
        return Scheduler(policy: policy, limits: SchedulerLimits(maxTokensPerStep: maxTokens, maxSequencesPerStep: maxSequences, quotaInterval: 0,
                                                                 separatesTemporalPhases: separatesTemporalPhases,
                                                                 mixesMuxPhases: mixesMuxPhases, mixedPromptTokenLimit: mixedPromptTokenLimit,
                                                                 latencyTargets: latencyTargets),
                         kvCache: KVCacheManager(pageCount: pages, tokensPerPageByModel: [a: 8, b: 8]),
                         partitionings: layouts, asynchronous: true)
    }

    func sequence(_ id: UInt64, _ model: ModelID, prompt: Int, maxTokens: Int = 100) -> SequenceState {
        SequenceState(id: SequenceID(id), model: model, promptTokens: Array(repeating: 1, count: prompt),
                      parameters: SamplingParameters(maxTokens: maxTokens))
    }

    /// Completes one job as the executor would: token 5 for each sequence that asked for one.
    @discardableResult
    func complete(_ job: JobPlan, _ scheduler: inout Scheduler) -> [(SequenceID, SampledToken)] {
        var result = StepResult()
        for s in job.sequences where s.sample != nil { result.samples[s.sequenceID] = SampledToken(tokenID: 5, logprob: 0) }
        return scheduler.complete(ticket: job.ticket, result: result)
    }

    func place(_ job: JobPlan) -> [Int] { [job.partitioning, job.partition] }

    @Test func ticketsAreUniqueAndIncreasing() throws {
        var s = scheduler(.mux)
        try s.add(sequence(1, a, prompt: 4))
        try s.add(sequence(2, b, prompt: 4))
        var tickets: [Int] = []
        for _ in 0..<6 {
            let plan = s.schedule()
            tickets += plan.jobs.map(\.ticket)
            for job in plan.jobs { complete(job, &s) }
        }
        #expect(tickets == tickets.sorted() && Set(tickets).count == tickets.count && tickets.first! > 0)
    }

    /// The split of a prefill job follows the prompt work that can start: 200 more prompts that
    /// wait for pages (the pool is full) leave it where it is instead of giving prefill the
    /// largest partition and the decode jobs the smallest.
    @Test func muxSplitIgnoresPromptsWaitingForPages() throws {
        func split(blockedPrompts: Int) throws -> [Int] {
            var s = scheduler(.mux, pages: 40)
            for id in 1...4 { try s.add(sequence(UInt64(id), b, prompt: 8)) }
            for job in s.schedule().jobs { complete(job, &s) }    // b's prompts: 4 sequences decoding
            // A prompt that takes the step's whole budget, then prompts of 25 pages each, more than
            // the 24 pages left once it and b's sequences hold theirs.
            try s.add(sequence(10, a, prompt: 64))
            for index in 0..<blockedPrompts { try s.add(sequence(UInt64(100 + index), a, prompt: 200, maxTokens: 40)) }
            let plan = s.schedule()
            let prefill = try #require(plan.jobs.first { $0.phase == .prefill })
            #expect(prefill.sequences.map(\.sequenceID) == [SequenceID(10)], "the blocked prompts cannot start")
            let decode = try #require(plan.jobs.first { $0.phase == .decode })
            return s.partitionings[decode.partitioning]
        }
        let alone = try split(blockedPrompts: 0)
        #expect(alone.count == 2)
        #expect(try split(blockedPrompts: 200) == alone)
    }

    /// Prompts of a model that runs a full job's worth of sequences cannot start either (the
    /// same rule as admission, `admissionOpen` and the sequence limit): 10 of a's waiting
    /// beside b's one leave the split where b's prompt alone puts it. Counted, they would give
    /// prefill 96 of 132 SMs instead of 64.
    @Test func muxSplitIgnoresPromptsOfAModelAtItsSequenceLimit() throws {
        func prefillSMs(blockedPrompts: Int) throws -> Int {
            var s = scheduler(.mux, pages: 400, maxSequences: 2)
            for id in 1...2 { try s.add(sequence(UInt64(id), a, prompt: 4)) }
            for job in s.schedule().jobs { complete(job, &s) }     // a runs 2 sequences: its limit
            try s.add(sequence(10, b, prompt: 4))
            for index in 0..<blockedPrompts { try s.add(sequence(UInt64(100 + index), a, prompt: 4)) }
            let plan = s.schedule()
            let prefill = try #require(plan.jobs.first { $0.phase == .prefill })
            #expect(prefill.model == b && s.waitingCount(a) == blockedPrompts)
            return s.partitionings[prefill.partitioning][0]
        }
        #expect(try prefillSMs(blockedPrompts: 0) == 64)
        #expect(try prefillSMs(blockedPrompts: 10) == 64)
    }

    /// A prompt waiting past its model's first-token target pulls the split toward prefill: one
    /// prompt beside four decoding sequences gets half the device, but 2 s into a wait with a
    /// 0.1 s target (weight 20 on the prefill term) it gets 96 of 132 SMs.
    @Test func muxSplitLeansTowardPrefillForPromptsPastTheirFirstTokenTarget() throws {
        func prefillSMs(targets: [ModelID: LatencyTargets]) throws -> Int {
            var s = scheduler(.mux, latencyTargets: targets)
            for id in 1...4 { try s.add(sequence(UInt64(id), b, prompt: 4)) }
            for job in s.schedule(now: 0).jobs { complete(job, &s) }    // b: 4 sequences decoding
            try s.add(SequenceState(id: SequenceID(10), model: a, promptTokens: [1, 1, 1, 1],
                                    parameters: SamplingParameters(maxTokens: 10), arrivalTime: 0))
            let plan = s.schedule(now: 2)
            let prefill = try #require(plan.jobs.first { $0.phase == .prefill })
            #expect(prefill.model == a)
            return s.partitionings[prefill.partitioning][0]
        }
        #expect(try prefillSMs(targets: [:]) == 64)
        #expect(try prefillSMs(targets: [a: LatencyTargets(timeToFirstToken: 0.1)]) == 96)
        // A target the wait has not passed changes nothing, nor does one for another model.
        #expect(try prefillSMs(targets: [a: LatencyTargets(timeToFirstToken: 5)]) == 64)
        #expect(try prefillSMs(targets: [b: LatencyTargets(timeToFirstToken: 0.1)]) == 64)
    }

    /// Decode steps slower than a model's per-token target pull the split toward decode: four
    /// prompts beside one decoding sequence get 96 SMs, but when b's decode jobs launch 0.1 s
    /// apart against a 0.01 s target (weight 10 on the decode term) prefill gets half.
    @Test func muxSplitLeansTowardDecodeWhenTokensComeSlowerThanTheirTarget() throws {
        func prefillSMs(targets: [ModelID: LatencyTargets]) throws -> Int {
            var s = scheduler(.mux, latencyTargets: targets)
            try s.add(sequence(1, b, prompt: 4))
            for job in s.schedule(now: 0).jobs { complete(job, &s) }    // b's prompt
            for now in [0.0, 0.1] {                                     // two decode steps 0.1 s apart
                let plan = s.schedule(now: now)
                #expect(plan.jobs.map(\.phase) == [.decode])
                for job in plan.jobs { complete(job, &s) }
            }
            #expect(abs((s.decodeTokenInterval[b] ?? 0) - 0.1) < 1e-12)
            for id in 10...13 { try s.add(sequence(UInt64(id), a, prompt: 4)) }
            let plan = s.schedule(now: 0.2)
            let prefill = try #require(plan.jobs.first { $0.phase == .prefill })
            #expect(prefill.sequences.count == 4)
            return s.partitionings[prefill.partitioning][0]
        }
        #expect(try prefillSMs(targets: [:]) == 96)
        #expect(try prefillSMs(targets: [b: LatencyTargets(timePerOutputToken: 0.01)]) == 64)
        #expect(try prefillSMs(targets: [b: LatencyTargets(timePerOutputToken: 1)]) == 96)
    }

    /// An idle gap in a model's decode work is not read as a slow token: once its decode lane is
    /// free with nothing to decode, the next launch starts a new measurement.
    @Test func decodeTokenIntervalRestartsAfterTheDecodeWorkStops() throws {
        var s = scheduler(.mux)
        try s.add(sequence(1, b, prompt: 4, maxTokens: 3))
        for now in [0.0, 0.1, 0.2] { for job in s.schedule(now: now).jobs { complete(job, &s) } }  // prompt, two decodes
        #expect(s.sequences[SequenceID(1)]?.outputTokens.count == 3)
        s.finish(SequenceID(1), reason: .length)
        #expect(abs((s.decodeTokenInterval[b] ?? 0) - 0.1) < 1e-12)
        #expect(s.schedule(now: 5).jobs.isEmpty)
        #expect(s.decodeTokenInterval[b] == nil)
        try s.add(sequence(2, b, prompt: 4))
        for now in [9.0, 9.5, 9.52] { for job in s.schedule(now: now).jobs { complete(job, &s) } }
        #expect(abs((s.decodeTokenInterval[b] ?? 0) - 0.02) < 1e-12, "measured from the first launch after the gap")
    }

    @Test func muxLongPrefillDoesNotHoldBackAnotherModelsDecodes() throws {
        var s = scheduler(.mux)
        try s.add(sequence(1, b, prompt: 4))
        let first = s.schedule()
        #expect(first.jobs.count == 1 && place(first.jobs[0]) == [0, 0], "a lone prefill has the whole device")
        complete(first.jobs[0], &s)
        // b decodes; a long prompt of a arrives and goes to the prefill lane.
        try s.add(sequence(2, a, prompt: 60))
        let mixed = s.schedule()
        let prefill = try #require(mixed.jobs.first { $0.phase == .prefill })
        let split = prefill.partitioning
        #expect(prefill.model == a && split > 0 && prefill.partition == 0)
        #expect(mixed.jobs.filter { $0.phase == .decode }.map(place) == [[split, 1]])
        #expect(s.currentMuxSplit == split)
        var decode = try #require(mixed.jobs.first { $0.phase == .decode })
        // While a's prefill runs, b's decode jobs come and go on the split's decode partition.
        for round in 1...5 {
            #expect(complete(decode, &s).map(\.0) == [SequenceID(1)])
            let next = s.schedule()
            #expect(next.jobs.count == 1, "round \(round): only b's decode lane is free")
            decode = try #require(next.jobs.first)
            #expect(decode.model == b && decode.phase == .decode && place(decode) == [split, 1])
        }
        #expect(s.sequences[SequenceID(1)]!.outputTokens.count == 6)
        #expect(s.inFlightTicket(of: SequenceID(2)) == prefill.ticket)
        // The prefill ends; with no prefill in flight decode jobs get the whole device.
        #expect(complete(prefill, &s).map(\.0) == [SequenceID(2)])
        #expect(s.currentMuxSplit == nil)
        let after = s.schedule()
        #expect(after.jobs.map(\.model) == [a], "b's decode lane is still busy")
        #expect(after.jobs.map(place) == [[0, 0]])
        complete(decode, &s)
        #expect(s.schedule().jobs.map(place) == [[0, 0]])
    }

    @Test func muxPutsOnePrefillJobInAPlanOnlyWhenAsynchronous() throws {
        var s = scheduler(.mux)
        try s.add(sequence(1, a, prompt: 10))
        try s.add(sequence(2, b, prompt: 10))
        let plan = s.schedule()
        #expect(plan.jobs.count == 1 && plan.jobs[0].phase == .prefill)
        #expect(s.schedule().jobs.isEmpty, "the prefill lane is busy")
        complete(plan.jobs[0], &s)
        let next = s.schedule()
        #expect(next.jobs.contains { $0.model == b && $0.phase == .prefill }, "round robin: b's turn")
        var sync = Scheduler(policy: .mux, limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 16),
                             kvCache: KVCacheManager(pageCount: 100, tokensPerPageByModel: [a: 8, b: 8]))
        try sync.add(sequence(1, a, prompt: 10))
        try sync.add(sequence(2, b, prompt: 10))
        #expect(sync.schedule().jobs.count == 2)
    }

    @Test func spatialJobsRunOnTheirModelsPartitionAndLanesAreIndependent() throws {
        var s = scheduler(.spatial)
        #expect(s.partitionings == [[132], [64, 64]])
        try s.add(sequence(1, a, prompt: 100))
        try s.add(sequence(2, b, prompt: 4))
        let plan = s.schedule()
        let jobA = try #require(plan.jobs.first { $0.model == a })
        var jobB = try #require(plan.jobs.first { $0.model == b })
        #expect(place(jobA) == [1, 0] && place(jobB) == [1, 1])
        #expect(s.lane(ofTicket: jobA.ticket) == .model(a) && s.isBusy(.model(b)))
        for _ in 0..<4 {
            complete(jobB, &s)
            let next = s.schedule()
            #expect(next.jobs.map(\.model) == [b], "a's busy lane does not hold b back")
            jobB = next.jobs[0]
            #expect(place(jobB) == [1, 1])
        }
        complete(jobA, &s)
        #expect(s.schedule().jobs.map(\.model) == [a])
    }

    @Test func temporalLaunchesNothingWhileAJobIsInFlight() throws {
        var s = scheduler(.temporal)
        #expect(s.partitionings == [[132]])
        try s.add(sequence(1, a, prompt: 10))
        try s.add(sequence(2, b, prompt: 10))
        let plan = s.schedule()
        #expect(plan.jobs.count == 1 && place(plan.jobs[0]) == [0, 0] && s.isBusy(.unit))
        #expect(s.schedule().jobs.isEmpty)
        complete(plan.jobs[0], &s)
        #expect(s.schedule().jobs.count == 1)
    }

    /// The default temporal step mixes a model's decode tokens and prompt chunks in one job; with
    /// separate phases (MuxServe's temporal baseline) they are two jobs of that model, prompt
    /// first, and the unit takes no other job until both end.
    @Test(arguments: [false, true])
    func temporalMixesOrSeparatesPhases(_ separate: Bool) throws {
        var s = scheduler(.temporal, separatesTemporalPhases: separate)
        try s.add(sequence(1, a, prompt: 4))
        for job in s.schedule().jobs { complete(job, &s) }     // 1 decodes from here
        try s.add(sequence(2, a, prompt: 6))
        let plan = s.schedule()
        #expect(plan.jobs.allSatisfy { $0.model == a && place($0) == [0, 0] })
        if separate {
            #expect(plan.jobs.map(\.phase) == [.prefill, .decode])
            #expect(plan.jobs.map { $0.sequences.map(\.sequenceID) } == [[SequenceID(2)], [SequenceID(1)]])
        } else {
            #expect(plan.jobs.count == 1 && plan.jobs[0].sequences.map(\.sequenceID).sorted() == [SequenceID(1), SequenceID(2)])
        }
        #expect(s.isBusy(.unit))
        try s.add(sequence(3, b, prompt: 6))
        complete(plan.jobs[0], &s)
        if separate {
            #expect(s.schedule().jobs.isEmpty, "the unit is free only once every job of the step has ended")
            complete(plan.jobs[1], &s)
        }
        #expect(s.schedule().jobs.map(\.model) == [b], "then the next model's turn")
    }

    /// `mux` with mixed phases (the `mux-mixed` experiment): a model's decode tokens and prompt
    /// chunks go in one job on the whole device, and another model's job starts beside it
    /// while it runs; a model's next job waits for its own last one only.
    @Test func muxMixedRunsOneMixedJobPerModelSideBySide() throws {
        var s = scheduler(.mux, mixesMuxPhases: true)
        try s.add(sequence(1, a, prompt: 4))
        for job in s.schedule().jobs { complete(job, &s) }     // 1 decodes from here
        try s.add(sequence(2, a, prompt: 6))
        let first = s.schedule()
        #expect(first.jobs.count == 1 && first.jobs[0].model == a && place(first.jobs[0]) == [0, 0])
        #expect(first.jobs[0].sequences.map(\.sequenceID).sorted() == [SequenceID(1), SequenceID(2)])
        #expect(first.jobs[0].phase == .prefill, "a job with any prompt tokens is a prefill job")
        #expect(s.lane(ofTicket: first.jobs[0].ticket) == .model(a))
        try s.add(sequence(3, b, prompt: 6))
        try s.add(sequence(4, a, prompt: 6))
        let second = s.schedule()
        #expect(second.jobs.map(\.model) == [b], "b starts beside a's job; a's next prompt waits for it")
        #expect(second.jobs.allSatisfy { place($0) == [0, 0] })
        complete(first.jobs[0], &s)
        let third = s.schedule()
        #expect(third.jobs.count == 1 && third.jobs[0].sequences.map(\.sequenceID).sorted() == [1, 2, 4].map(SequenceID.init))
    }

    /// `mux-hybrid`: a prompt past the limit is a prefill job on partition 0 of a split, and the
    /// mixed jobs launched while it runs take partition 1; a short prompt mixes with its model's
    /// decode tokens. Once the long prompt's job ends, everything is back on the whole device.
    @Test func muxHybridPutsLongPromptsOnASplitBesideMixedJobs() throws {
        var s = scheduler(.mux, mixesMuxPhases: true, mixedPromptTokenLimit: 8)
        try s.add(sequence(1, a, prompt: 4))
        let first = s.schedule()
        #expect(first.jobs.count == 1 && place(first.jobs[0]) == [0, 0], "nothing else runs: the whole device")
        for job in first.jobs { complete(job, &s) }     // 1 decodes from here
        try s.add(sequence(2, a, prompt: 20))          // long
        try s.add(sequence(3, b, prompt: 4))           // short
        let plan = s.schedule()
        let long = try #require(plan.jobs.first { $0.sequences.map(\.sequenceID) == [SequenceID(2)] })
        #expect(long.phase == .prefill && s.lane(ofTicket: long.ticket) == .prefill)
        let split = long.partitioning
        #expect(split > 0 && long.partition == 0 && s.partitionings[split].count == 2)
        let mixed = plan.jobs.filter { $0.ticket != long.ticket }
        #expect(mixed.map(\.model).sorted { $0.name < $1.name } == [a, b])
        #expect(mixed.allSatisfy { place($0) == [split, 1] }, "mixed jobs share the split's other partition")
        #expect(mixed.first { $0.model == a }?.sequences.map(\.sequenceID) == [SequenceID(1)])
        #expect(mixed.first { $0.model == b }.map { s.lane(ofTicket: $0.ticket) } == .model(b))
        // a's next mixed job while the long prompt still runs: the same split.
        complete(mixed.first { $0.model == a }!, &s)
        let during = s.schedule()
        #expect(during.jobs.map(\.model) == [a] && place(during.jobs[0]) == [split, 1])
        complete(long, &s)
        complete(during.jobs[0], &s)
        complete(mixed.first { $0.model == b }!, &s)
        let after = s.schedule()
        #expect(after.jobs.allSatisfy { place($0) == [0, 0] })
        #expect(after.jobs.first { $0.model == a }?.sequences.map(\.sequenceID).sorted() == [SequenceID(1), SequenceID(2)])
    }

    /// Two jobs of one model in flight at once: its long prompt on the prefill lane beside its
    /// short prompt's mixed job (`hybrid`), or beside its decode job (split). Only the prefill
    /// lane's job is marked, so the executor gives it activation buffers of its own (on a GPU the
    /// two jobs shared them under `hybrid` and computed wrong tokens).
    @Test(arguments: [false, true])
    func jobsOfOneModelThatRunAtOnceAreToldApart(hybrid: Bool) throws {
        var s = hybrid ? scheduler(.mux, mixesMuxPhases: true, mixedPromptTokenLimit: 8) : scheduler(.mux)
        try s.add(sequence(1, a, prompt: 4))
        if !hybrid { for job in s.schedule().jobs { complete(job, &s) } }   // 1 decodes from here
        try s.add(sequence(2, a, prompt: 20))
        let plan = s.schedule()
        #expect(plan.jobs.count == 2 && plan.jobs.allSatisfy { $0.model == a })
        let long = try #require(plan.jobs.first { $0.sequences.map(\.sequenceID) == [SequenceID(2)] })
        let other = try #require(plan.jobs.first { $0.ticket != long.ticket })
        #expect(s.lane(ofTicket: long.ticket) == .prefill && long.onPrefillLane)
        #expect(s.lane(ofTicket: other.ticket) == (hybrid ? .model(a) : .decode(a)) && !other.onPrefillLane)
        #expect(other.phase == (hybrid ? .prefill : .decode), "the case that shared buffers: both jobs with prompt tokens")
        #expect(long.partition != other.partition && long.partitioning == other.partitioning, "side by side on one split")
    }

    /// A decode sequence that finds the pool full while other jobs are in flight keeps its cache
    /// and waits; the page that comes free next is its, not a new prompt's. (Before, the prefill
    /// lane admitted a prompt beside the busy decode lane and took the page, again and again.)
    @Test func pagesThatComeFreeGoToWaitingDecodesBeforeAdmissions() throws {
        var s = scheduler(.mux, pages: 6)
        try s.add(sequence(1, a, prompt: 4, maxTokens: 20))
        try s.add(sequence(2, a, prompt: 15, maxTokens: 20)) // 2 pages, a third at position 16
        for job in s.schedule().jobs { complete(job, &s) }
        try s.add(sequence(3, b, prompt: 8, maxTokens: 1))
        try s.add(sequence(4, b, prompt: 15, maxTokens: 20))
        let second = s.schedule()                              // a's decodes, b's prompts: the pool is full
        #expect(second.jobs.map(\.phase) == [.prefill, .decode] && s.kvCache.freePageCount == 0)
        complete(second.jobs[1], &s)
        let third = s.schedule()                               // 2 needs a page: none free, b's prompts in flight
        #expect(third.jobs.map { $0.sequences.map(\.sequenceID) } == [[SequenceID(1)]])
        #expect(s.pageWaitTotal == 1 && s.preemptionTotal == 0)
        complete(second.jobs[0], &s)
        s.finish(SequenceID(3), reason: .length)               // a page comes free while a's lane is busy
        try s.add(sequence(5, b, prompt: 8, maxTokens: 20))
        let fourth = s.schedule()
        #expect(!fourth.jobs.contains { $0.phase == .prefill }, "a prompt was admitted before the waiting decode")
        #expect(s.waitingCount(b) == 1 && s.kvCache.freePageCount == 1)
        complete(third.jobs[0], &s)
        let fifth = s.schedule()
        #expect(fifth.jobs.contains { $0.model == a && $0.sequences.contains { $0.sequenceID == SequenceID(2) } })
        #expect(s.kvCache.freePageCount == 0 && s.preemptionTotal == 0)
    }

    /// A model never runs more sequences than a job carries (16 here): `mux`'s prefill lane
    /// admitted past that beside the decode lane, and the newest sequences then got no decode
    /// step until older ones ended. The 17th waits and is admitted when one ends.
    @Test func muxAdmitsNoMoreSequencesThanADecodeJobCarries() throws {
        var s = scheduler(.mux, pages: 400, maxTokens: 256)
        for id in 1...16 { try s.add(sequence(UInt64(id), a, prompt: 4)) }
        for job in s.schedule().jobs { complete(job, &s) }     // 16 decoding
        try s.add(sequence(17, a, prompt: 4))
        let plan = s.schedule()
        #expect(plan.jobs.map(\.phase) == [.decode] && plan.jobs[0].sequences.count == 16)
        #expect(s.schedule().jobs.isEmpty, "admitted beside the busy decode lane")
        #expect(s.waitingCount(a) == 1 && s.runningCount(a) == 16)
        s.finish(SequenceID(1), reason: .abort)                   // its pages wait for the job
        let next = s.schedule()
        #expect(next.jobs.map(\.phase) == [.prefill] && next.jobs[0].sequences.map(\.sequenceID) == [SequenceID(17)])
        complete(plan.jobs[0], &s)
    }

    /// On an asynchronous executor the sequence limit holds per job: a's full decode job (16
    /// sequences, the limit) does not leave b's decode lane, planned in the same call, empty.
    @Test func aFullDecodeJobLeavesOtherLanesTheirSequences() throws {
        var s = scheduler(.mux, pages: 400)
        for id in 1...16 { try s.add(sequence(UInt64(id), a, prompt: 4)) }
        for id in 17...18 { try s.add(sequence(UInt64(id), b, prompt: 4)) }
        for _ in 0..<2 { for job in s.schedule().jobs { complete(job, &s) } }   // a's prompts, then b's
        let plan = s.schedule()
        #expect(plan.jobs.map(\.phase) == [.decode, .decode])
        #expect(plan.jobs.map(\.model) == [a, b] && plan.jobs.map(\.sequences.count) == [16, 2])
    }

    @Test func abortOfAnInFlightSequenceFreesItsPagesWhenItsJobEnds() throws {
        var s = scheduler(.mux, pages: 20, maxTokens: 256)
        try s.add(sequence(1, a, prompt: 20))
        let plan = s.schedule()
        let held = 20 - s.kvCache.freePageCount
        #expect(held == 3)
        s.finish(SequenceID(1), reason: .abort)
        #expect(s.liveCount == 0 && s.inFlightCount == 1)
        #expect(s.kvCache.freePageCount == 17, "the job may still write its KV: the pages stay taken")
        // Nothing else can take them meanwhile.
        try s.add(sequence(2, b, prompt: 8 * 18, maxTokens: 1))
        #expect(s.schedule().jobs.isEmpty)
        #expect(complete(plan.jobs[0], &s).isEmpty, "an aborted sequence gets no token")
        #expect(s.kvCache.freePageCount == 20 && s.kvCache.isConsistent() && s.inFlightCount == 0)
        // The same through a failed job.
        s.finish(SequenceID(2), reason: .abort)
        try s.add(sequence(3, b, prompt: 9))
        let failing = s.schedule()
        s.finish(SequenceID(3), reason: .abort)
        #expect(s.kvCache.freePageCount == 18)
        #expect(s.fail(ticket: failing.jobs[0].ticket).isEmpty)
        #expect(s.kvCache.freePageCount == 20 && s.kvCache.isConsistent())
    }

    @Test func aFailedJobReturnsOnlyItsOwnSequences() throws {
        var s = scheduler(.mux)
        try s.add(sequence(1, a, prompt: 4))
        try s.add(sequence(2, b, prompt: 4))
        for job in s.schedule().jobs { complete(job, &s) }  // a's prefill
        for job in s.schedule().jobs { complete(job, &s) }  // b's prefill, a's decode
        let plan = s.schedule()
        #expect(plan.jobs.count == 2 && plan.jobs.allSatisfy { $0.phase == .decode })
        let jobA = plan.jobs.first { $0.model == a }!, jobB = plan.jobs.first { $0.model == b }!
        let failed = s.fail(ticket: jobA.ticket)
        #expect(failed == [SequenceID(1)])
        for id in failed { s.finish(id, reason: .error) }
        #expect(s.inFlightTicket(of: SequenceID(2)) == jobB.ticket, "b's job is untouched")
        #expect(complete(jobB, &s).map(\.0) == [SequenceID(2)])
        #expect(s.fail(ticket: jobA.ticket).isEmpty, "a ticket ends once")
        #expect(s.kvCache.isConsistent())
    }

    @Test func preemptionNeverPicksASequenceInFlight() throws {
        // 4 pages of 8 tokens: x (a) holds 3, y (b) holds 1 and needs a second one.
        var s = scheduler(.mux, pages: 4)
        try s.add(sequence(1, a, prompt: 16, maxTokens: 8))
        try s.add(sequence(2, b, prompt: 8, maxTokens: 16))
        for job in s.schedule().jobs { complete(job, &s) }  // x's prompt
        let plan = s.schedule()  // y's prompt and x's first decode (x takes its third page)
        #expect(plan.jobs.count == 2 && s.kvCache.freePageCount == 0)
        complete(plan.jobs.first { $0.model == b }!, &s)
        let xJob = plan.jobs.first { $0.model == a }!
        // y needs a page; the only other holder, x, is in flight: y waits with its cache.
        #expect(s.schedule().jobs.isEmpty)
        #expect(s.preemptionTotal == 0 && s.sequences[SequenceID(1)]!.status == .running)
        #expect(s.sequences[SequenceID(2)]!.computedCount == 8 && s.kvCache.pageTable(SequenceID(2)).count == 1)
        complete(xJob, &s)
        #expect(!s.schedule().jobs.isEmpty)
        #expect(s.kvCache.isConsistent())
    }

    @Test func finishedInFlightSequencesAreNotScheduledAgain() throws {
        var s = scheduler(.spatial)
        try s.add(sequence(1, a, prompt: 4))
        let plan = s.schedule()
        #expect(s.schedule().jobs.isEmpty, "its only sequence is in flight")
        complete(plan.jobs[0], &s)
        #expect(s.schedule().jobs.first?.sequences.map(\.sequenceID) == [SequenceID(1)])
    }
}

import LLMuxCore
import Scheduling
import Testing

/// `scheduleAhead`: the next decode step planned while the current one is in flight.
@Suite struct SchedulerLookaheadTests {
    let lanes = SchedulerLaneTests()

    @Test func plansOnePositionFurtherWithPendingTokens() throws {
        var s = lanes.scheduler(.temporal, multiprocessors: 0)
        try s.add(lanes.sequence(1, lanes.a, prompt: 7, maxTokens: 5))
        try s.add(lanes.sequence(2, lanes.a, prompt: 8, maxTokens: 2))
        let prefill = s.schedule()
        let tooEarly = s.scheduleAhead()
        #expect(tooEarly == nil, "a prompt step in flight is not planned ahead")
        lanes.complete(prefill.jobs[0], &s)
        let decode = s.schedule()   // positions 7 and 8; sequence 2's second token ends it
        let planned = s.scheduleAhead()
        let ahead = try #require(planned)
        let job = try #require(ahead.jobs.first)
        #expect(job.sequences.map(\.sequenceID) == [SequenceID(1)], "the sequence the step in flight ends is left out")
        #expect(job.tokenIDs == [Scheduler.pendingToken] && job.positions == [8] && job.sequences[0].contextLength == 9)
        #expect(job.sequences[0].sample?.generatedCount == 2)
        #expect(s.inFlightTicket(of: SequenceID(1)) == job.ticket)
        // Sequence 1 is finished (say, by EOS) while both steps are in flight: its pages stay
        // until the step planned ahead ends.
        lanes.complete(decode.jobs[0], &s)
        s.finish(SequenceID(1), reason: .stop)
        s.finish(SequenceID(2), reason: .length)
        #expect(s.kvCache.freePageCount < s.kvCache.pool.pageCount)
        let extra = lanes.complete(job, &s)
        #expect(extra.isEmpty, "a finished sequence's extra sample is dropped")
        #expect(s.kvCache.freePageCount == s.kvCache.pool.pageCount && s.inFlightCount == 0)
    }

    @Test func waitingRequestsAreNotPlannedAhead() throws {
        var s = lanes.scheduler(.temporal, multiprocessors: 0)
        try s.add(lanes.sequence(1, lanes.a, prompt: 4))
        lanes.complete(s.schedule().jobs[0], &s)
        let decode = s.schedule()
        try s.add(lanes.sequence(2, lanes.b, prompt: 4))
        let planned = s.scheduleAhead()
        #expect(planned == nil)
        lanes.complete(decode.jobs[0], &s)
    }

    @Test func pendingTokensAreFilledFromTheSamplesOrRefused() throws {
        var s = lanes.scheduler(.temporal, multiprocessors: 0)
        try s.add(lanes.sequence(1, lanes.a, prompt: 4))
        lanes.complete(s.schedule().jobs[0], &s)
        _ = s.schedule()
        let planned = s.scheduleAhead()
        var ahead = try #require(planned)
        var missing = ahead
        let refused = missing.fillPendingTokens(from: StepResult())
        #expect(!refused, "a pending token without its sample is refused")
        let filled = ahead.fillPendingTokens(from: StepResult(samples: [SequenceID(1): SampledToken(tokenID: 42, logprob: 0)]))
        #expect(filled && ahead.jobs[0].tokenIDs == [42])
    }
}

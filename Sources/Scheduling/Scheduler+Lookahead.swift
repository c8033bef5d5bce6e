import LLMuxCore

/// Planning a decode step before the samples of the one in flight are known, so that the host
/// prepares it while the device still runs the current step (the overlap of SGLang's
/// "zero-overhead" scheduler and vLLM's async scheduling).
extension Scheduler {
    /// The token id a planned-ahead job carries for each sequence until the step in flight has
    /// sampled it (`fillPendingTokens`).
    public static let pendingToken: TokenID = -1

    /// Plans the step after the one in flight when that step is pure decode and nothing else waits:
    /// the same sequences, one position further, their input tokens `pendingToken` until the
    /// caller fills them in from the step in flight. Nil (and nothing changed but page
    /// reservations, which the next step would make anyway) when it cannot plan ahead: no job or a
    /// prompt chunk in flight, requests waiting, an admitted sequence outside the step, a
    /// repetition penalty (it needs the token in flight), or no pages left.
    ///
    /// A sequence whose step in flight ends it (its last `max_tokens` token) is left out. One
    /// that the step ends otherwise (EOS, a stop string, an abort) is finished by the caller while
    /// the planned-ahead job runs: its pages return when that job ends and its extra sample is
    /// dropped, as for any sequence finished while its job is in flight.
    public mutating func scheduleAhead() -> StepPlan? {
        guard !inFlight.isEmpty, waitingCount == 0, running.allSatisfy({ ticketBySequence[$0] != nil }),
              inFlight.values.allSatisfy({ $0.phase == .decode && $0.entries.allSatisfy { $0.tokens == 1 } }) else { return nil }
        var jobs: [JobPlan] = []
        for ticket in inFlightTickets {
            let flying = inFlight[ticket]!
            var job = JobPlan(model: flying.model, phase: .decode, tokenIDs: [], positions: [], slotMapping: [], sequences: [])
            for entry in flying.entries {
                guard let sequence = sequences[entry.sequence] else { continue }   // aborted meanwhile
                guard !sequence.parameters.needsHistory else { return nil }
                // After the step in flight: one more token computed and one more generated.
                let generated = sequence.outputTokens.count + 1
                guard generated < sequence.parameters.maxTokens else { continue }
                let position = sequence.computedCount + 1
                guard kvCache.reserve(sequence.id, model: sequence.model, tokens: position + 1) else { return nil }
                job.sequences.append(SequencePlan(
                    sequenceID: sequence.id, queryStart: job.tokenIDs.count, queryCount: 1, contextLength: position + 1,
                    pageTable: kvCache.pageTable(sequence.id),
                    sample: SampleRequest(parameters: sequence.parameters, generatedCount: generated)))
                job.tokenIDs.append(Self.pendingToken)
                job.positions.append(Int32(position))
                job.slotMapping.append(kvCache.slot(sequence.id, model: sequence.model, position: position))
            }
            if !job.sequences.isEmpty { jobs.append(job) }
        }
        guard !jobs.isEmpty else { return nil }
        var plan = StepPlan(jobs: jobs)
        // Decode jobs only: they take the split in flight, which no latency pressure moves, so the
        // time does not matter here.
        assignPartitions(&plan, now: 0)
        register(&plan)
        // Its launch time is not known here, so the mixed job in flight goes unmeasured rather
        // than be timed over the planned-ahead steps as well.
        for job in jobs { mixedJobCosts[job.model]?.promptTokensInFlight = nil }
        plannedAheadTotal += 1
        return plan
    }

    /// Drops a planned job that never ran (its plan was not launched): nothing of its sequences
    /// changes, and those finished meanwhile get their pages back.
    public mutating func cancel(ticket: Int) {
        _ = end(ticket)
    }
}

extension StepPlan {
    /// Replaces the `Scheduler.pendingToken` inputs of a planned-ahead plan with the tokens the
    /// step before sampled. Returns false (and leaves the rest unfilled) if one is missing.
    public mutating func fillPendingTokens(from result: StepResult) -> Bool {
        for index in jobs.indices {
            for sequence in jobs[index].sequences where jobs[index].tokenIDs[sequence.queryStart] == Scheduler.pendingToken {
                guard let sample = result.samples[sequence.sequenceID] else { return false }
                jobs[index].tokenIDs[sequence.queryStart] = sample.tokenID
            }
        }
        return true
    }
}

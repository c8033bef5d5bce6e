import LLMuxCore

/// Tickets, lanes and the books of jobs in flight.
extension Scheduler {
    /// A slot for one job at a time. A lane with a job in flight gets no new job; different
    /// lanes' jobs run at once on an asynchronous executor.
    public enum Lane: Hashable, Sendable, CustomStringConvertible {
        /// The whole unit (`temporal`: one job at a time on the whole device).
        case unit
        /// One model's mixed prefill-and-decode job: on its own partition (`spatial`), or beside
        /// the other models' (`mux` with `mixesMuxPhases`).
        case model(ModelID)
        /// The unit's prefill job, models taking turns (`mux`; with mixed phases, the prompts past
        /// `mixedPromptTokenLimit` only).
        case prefill
        /// One model's decode job (`mux`).
        case decode(ModelID)

        /// `unit`, `model(a)`, `prefill`, `decode(a)`.
        public var description: String {
            switch self {
            case .unit: return "unit"
            case .model(let model): return "model(\(model))"
            case .prefill: return "prefill"
            case .decode(let model): return "decode(\(model))"
            }
        }
    }

    /// One sequence's part of an in-flight job.
    struct JobEntry: Sendable {
        /// The sequence.
        var sequence: SequenceID
        /// Tokens of it the job computes (its `computedCount` grows by them on completion).
        var tokens: Int
    }

    /// What the scheduler remembers of a job until it ends.
    struct InFlightJob: Sendable {
        /// Its lane.
        var lane: Lane
        /// Its model.
        var model: ModelID
        /// Prefill or decode.
        var phase: JobPhase
        /// The partitioning it runs under.
        var partitioning: Int
        /// Its sequences and their tokens, in flat-batch order.
        var entries: [JobEntry]
    }

    /// The lane a job of this plan belongs to under the policy.
    func lane(for job: JobPlan) -> Lane {
        switch policy {
        case .temporal: return .unit
        case .spatial: return .model(job.model)
        case .mux where limits.mixesMuxPhases:
            let prefillLane = job.sequences.first.map { prefillLaneSequences.contains($0.sequenceID) } ?? false
            return prefillLane ? .prefill : .model(job.model)
        case .mux: return job.phase == .prefill ? .prefill : .decode(job.model)
        }
    }

    /// Jobs planned and not yet completed or failed.
    public var inFlightCount: Int { inFlight.count }
    /// Their tickets, oldest first.
    public var inFlightTickets: [Int] { inFlight.keys.sorted() }
    /// The lane of an in-flight job.
    public func lane(ofTicket ticket: Int) -> Lane? { inFlight[ticket]?.lane }
    /// True while a job of `lane` is in flight.
    public func isBusy(_ lane: Lane) -> Bool { inFlight.values.contains { $0.lane == lane } }
    /// The ticket of the in-flight job that holds `id`, if any.
    public func inFlightTicket(of id: SequenceID) -> Int? { ticketBySequence[id] }
    /// The `mux` split (an index into `partitionings`) the in-flight prefill job runs on; nil when
    /// no prefill job is in flight or it has the whole device. Decode jobs launched meanwhile take
    /// the split's other partition.
    public var currentMuxSplit: Int? {
        inFlight.values.first { $0.lane == .prefill && $0.partitioning > 0 }?.partitioning
    }

    /// Gives the plan's jobs their tickets, marks those of the prefill lane, and records them as
    /// in flight.
    mutating func register(_ plan: inout StepPlan) {
        for index in plan.jobs.indices {
            let ticket = nextTicket
            nextTicket += 1
            plan.jobs[index].ticket = ticket
            let lane = lane(for: plan.jobs[index])
            plan.jobs[index].onPrefillLane = lane == .prefill
            let job = plan.jobs[index]
            let entries = job.sequences.map { JobEntry(sequence: $0.sequenceID, tokens: $0.queryCount) }
            inFlight[ticket] = InFlightJob(lane: lane, model: job.model, phase: job.phase,
                                           partitioning: job.partitioning, entries: entries)
            for entry in entries { ticketBySequence[entry.sequence] = ticket }
        }
    }

    /// Records a finished job: its tokens are now cached and its sampled tokens appended. Returns
    /// the live sequences that received a token, in job order. Sequences finished while it ran
    /// get their pages back now. An unknown ticket changes nothing.
    public mutating func complete(ticket: Int, result: StepResult) -> [(SequenceID, SampledToken)] {
        guard let job = end(ticket) else { return [] }
        var appended: [(SequenceID, SampledToken)] = []
        for entry in job.entries where sequences[entry.sequence] != nil {
            let id = entry.sequence
            sequences[id]!.computedCount += entry.tokens
            if let sample = result.samples[id] {
                sequences[id]!.outputTokens.append(sample.tokenID)
                appended.append((id, sample))
            }
        }
        return appended
    }

    /// Records a failed job: returns its live sequences, which the caller ends with
    /// `finish(_:reason: .error)` (their pages are free to go then: the job is over). Nothing of
    /// other jobs changes. An unknown ticket returns nothing.
    public mutating func fail(ticket: Int) -> [SequenceID] {
        guard let job = end(ticket) else { return [] }
        return job.entries.map(\.sequence).filter { sequences[$0] != nil }
    }

    /// Completes every job in flight with one result, oldest first: the step of a synchronous
    /// driver (the cluster simulator, tests). Returns the sequences that received a token.
    public mutating func commit(_ result: StepResult) -> [(SequenceID, SampledToken)] {
        inFlightTickets.flatMap { complete(ticket: $0, result: result) }
    }

    /// Takes a job off the books and frees the pages of its sequences that were finished meanwhile
    /// (unless a later job planned ahead still holds them).
    mutating func end(_ ticket: Int) -> InFlightJob? {
        guard let job = inFlight.removeValue(forKey: ticket) else { return nil }
        for entry in job.entries {
            guard ticketBySequence[entry.sequence] == ticket else { continue }
            ticketBySequence[entry.sequence] = nil
            if releaseOnCompletion.remove(entry.sequence) != nil { kvCache.release(entry.sequence) }
        }
        return job
    }
}

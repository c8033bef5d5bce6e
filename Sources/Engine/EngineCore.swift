import Foundation
import KVMemory
import LLMuxCore
import Scheduling
import Tokenization

/// The synchronous heart of a unit: owns the scheduler, the KV bookkeeping and the executor, and
/// advances the live sequences one step per call (schedule, execute, postprocess, as in
/// nano-vllm). Whoever owns an `EngineCore` must call it from one thread at a time.
///
/// With an `AsynchronousExecutor` a step launches the new jobs (on their SM partitions) and
/// collects the jobs that finished, whichever step launched them, so a long prefill of one model
/// does not hold back the decode steps of others; when nothing new can start it waits inside
/// `step()` for a job to finish. Any other executor runs the whole plan within the step.
public final class EngineCore {
    private let executor: any ModelExecutor
    /// The same executor when it runs jobs in the background.
    private let asynchronousExecutor: (any AsynchronousExecutor)?
    /// The same executor when steps are pipelined: each step is queued and collected in the next
    /// call, which plans the step after it meanwhile (nil: every step runs to the end in its call).
    private let pipelinedExecutor: (any PipelinedExecutor)?
    /// The plan queued on the pipelined executor and not collected yet.
    private var begun: StepPlan?
    private var scheduler: Scheduler
    private let descriptors: [ModelID: ModelDescriptor]
    private let tokenizers: [ModelID: Tokenizer]
    private var trackers: [SequenceID: OutputTracker] = [:]
    private var nextSequence: UInt64 = 1
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    /// The SM partitionings the executor granted (empty: jobs run unpartitioned).
    public let partitionings: [[Int]]
    /// Why the executor refused the partitionings asked for, if it did (jobs then run
    /// unpartitioned, which is correct but gives up the overlap).
    public let partitionError: String?

    /// An engine over `executor`; `tokenizers` decode each model's output. `expectedRates`
    /// (requests/s by model) set the initial KV quotas and spatial shares. An asynchronous
    /// executor with SMs to split is asked for the partitionings of `policy`
    /// (`PartitionLayout.layouts`), and the scheduler places jobs on the ones it grants.
    ///
    /// `pipelining` (default: when the executor queues work on a device; `LLMUX_PIPELINE=0` or
    /// `1` overrides the default) pipelines the steps of a `PipelinedExecutor`: a step's samples
    /// are collected by the next call, which first plans the step after it (`scheduleAhead`) while
    /// the device still runs it, launches that, and only then turns the samples into text.
    public init(executor: any ModelExecutor, tokenizers: [ModelID: Tokenizer], policy: SchedulingPolicy = .mux,
                limits: SchedulerLimits = SchedulerLimits(), expectedRates: [ModelID: Double] = [:], pipelining: Bool? = nil) {
        self.executor = executor
        self.tokenizers = tokenizers
        self.descriptors = Dictionary(uniqueKeysWithValues: executor.models.map { ($0.id, $0) })
        let asynchronous = executor as? any AsynchronousExecutor
        self.asynchronousExecutor = asynchronous
        let pipelined = asynchronous == nil ? executor as? any PipelinedExecutor : nil
        let pipelineSetting = ProcessInfo.processInfo.environment["LLMUX_PIPELINE"].map { $0 != "0" }
        self.pipelinedExecutor = pipelining ?? pipelineSetting ?? (pipelined?.queuesAsynchronously ?? false) ? pipelined : nil
        var granted: [[Int]] = []
        var partitionError: String?
        if let asynchronous, asynchronous.multiprocessorCount > 0 {
            let wanted = PartitionLayout.layouts(policy: policy, multiprocessorCount: asynchronous.multiprocessorCount,
                                                 models: executor.models, expectedRates: expectedRates)
            do {
                granted = try asynchronous.configurePartitions(wanted)
            } catch {
                partitionError = "\(error)"
            }
        }
        self.partitionings = granted
        self.partitionError = partitionError
        let perPage = Dictionary(uniqueKeysWithValues: executor.models.map { ($0.id, executor.tokensPerPage(for: $0.id)) })
        self.scheduler = Scheduler(policy: policy, limits: limits,
                                   kvCache: KVCacheManager(pageCount: executor.pageCount, tokensPerPageByModel: perPage),
                                   expectedRates: expectedRates, partitionings: granted, asynchronous: asynchronous != nil)
        self.started = clock.now
    }

    /// Descriptors of the served models.
    public var models: [ModelDescriptor] { executor.models }

    /// Time spent in each phase of `step()` so far (synchronous executors; benchmarks read it).
    public private(set) var phaseTimes = StepPhaseTimes()

    /// True while any sequence is waiting or running, or any job is in flight (an aborted
    /// sequence's job still has to be collected before its pages are free).
    public var hasWork: Bool { scheduler.liveCount > 0 || scheduler.inFlightCount > 0 }

    /// The scheduler's state, for tests and metrics.
    public var schedulerState: Scheduler { scheduler }

    /// Validates and queues a request; throws a message a user can act on when it can never run.
    @discardableResult
    public func add(_ request: GenerationRequest) throws -> SequenceID {
        guard let model = descriptors[request.model] else { throw LLMuxError.unknownModel(request.model.name) }
        if let problem = request.validationError(for: model) { throw problem }
        var parameters = request.parameters
        if parameters.seed == nil { parameters.seed = UInt64.random(in: 0...UInt64.max) }
        let id = SequenceID(nextSequence)
        nextSequence += 1
        try scheduler.add(SequenceState(id: id, model: request.model, promptTokens: request.promptTokens, parameters: parameters,
                                        arrivalTime: secondsSinceStart(clock.now)))
        let detokenizer = tokenizers[request.model]?.makeDetokenizer(skipSpecialTokens: true)
        trackers[id] = OutputTracker(
            detokenizer: detokenizer, parameters: parameters, eosTokenIDs: model.eosTokenIDs,
            contextLength: model.contextLength, promptLength: request.promptTokens.count)
        return id
    }

    /// Aborts a sequence; returns its final event. Its pages are freed now, or when its job ends
    /// if one is in flight.
    public func abort(_ id: SequenceID) -> SequenceEvent? {
        guard trackers.removeValue(forKey: id) != nil else { return nil }
        scheduler.finish(id, reason: .abort)
        return SequenceEvent(sequenceID: id, token: nil, textDelta: "", finishReason: .abort)
    }

    /// One engine step: plans new jobs, runs or launches them, and returns the events of the
    /// jobs that finished. A failing job fails its own sequences (with the message), never the
    /// process or other jobs' sequences.
    public func step() -> [SequenceEvent] {
        if let pipelinedExecutor { return pipelinedStep(pipelinedExecutor) }
        let scheduleStart = clock.now
        let plan = scheduler.schedule(now: secondsSinceStart(scheduleStart))
        let executeStart = clock.now
        phaseTimes.schedule += executeStart - scheduleStart
        var events: [SequenceEvent] = []
        if let asynchronousExecutor {
            var launched = false
            if !plan.isEmpty {
                do {
                    try asynchronousExecutor.launch(plan)
                    launched = true
                } catch {
                    // Nothing of the plan was queued.
                    for job in plan.jobs { events += failJob(job.ticket, message: "\(error)") }
                }
            }
            // Wait only when nothing new started: then no lane can take work until a job ends.
            let wait = !launched && asynchronousExecutor.inFlightCount > 0
            for completion in asynchronousExecutor.collect(wait: wait) {
                switch completion.result {
                case .success(let result): events += completeJob(completion.ticket, result: result)
                case .failure(let error): events += failJob(completion.ticket, message: "\(error)")
                }
            }
        } else if !plan.isEmpty {
            do {
                let result = try executor.execute(plan)
                let postprocessStart = clock.now
                phaseTimes.execute += postprocessStart - executeStart
                // One result for the whole plan; each job takes its own sequences' samples.
                for job in plan.jobs { events += completeJob(job.ticket, result: result) }
                phaseTimes.postprocess += clock.now - postprocessStart
            } catch {
                for job in plan.jobs { events += failJob(job.ticket, message: "\(error)") }
            }
        }
        return events
    }

    /// A pipelined step: collects the plan queued by the last call (planning the next decode step
    /// while the device finishes it, and queuing that before turning the samples into text), or,
    /// when nothing can be planned ahead, schedules after the books are up to date and queues that.
    private func pipelinedStep(_ executor: any PipelinedExecutor) -> [SequenceEvent] {
        var events: [SequenceEvent] = []
        if let running = begun {
            begun = nil
            let aheadStart = clock.now
            let ahead = scheduler.scheduleAhead()
            phaseTimes.schedule += clock.now - aheadStart
            let (booked, failures) = collect(running, from: executor, ahead: ahead)
            events += failures
            let postprocessStart = clock.now
            events += track(booked)
            phaseTimes.postprocess += clock.now - postprocessStart
            if begun != nil { return events }
        }
        let scheduleStart = clock.now
        let plan = scheduler.schedule(now: secondsSinceStart(scheduleStart))
        let executeStart = clock.now
        phaseTimes.schedule += executeStart - scheduleStart
        if !plan.isEmpty { events += begin(plan, on: executor) }
        phaseTimes.execute += clock.now - executeStart
        return events
    }

    /// Waits for `running`, books its samples, and queues `ahead` (filled with those samples) if
    /// given; returns the booked samples and the events of failed jobs.
    private func collect(_ running: StepPlan, from executor: any PipelinedExecutor, ahead: StepPlan?)
        -> (booked: [(SequenceID, SampledToken)], failures: [SequenceEvent]) {
        let executeStart = clock.now
        defer { phaseTimes.execute += clock.now - executeStart }
        let result: StepResult
        do {
            result = try executor.end()
        } catch {
            for job in ahead?.jobs ?? [] { scheduler.cancel(ticket: job.ticket) }
            return ([], running.jobs.flatMap { failJob($0.ticket, message: "\(error)") })
        }
        let booked = running.jobs.flatMap { scheduler.complete(ticket: $0.ticket, result: result) }
        guard var ahead else { return (booked, []) }
        guard ahead.fillPendingTokens(from: result) else {
            for job in ahead.jobs { scheduler.cancel(ticket: job.ticket) }
            return (booked, [])
        }
        return (booked, begin(ahead, on: executor))
    }

    /// Queues `plan`; a failure fails its jobs' sequences.
    private func begin(_ plan: StepPlan, on executor: any PipelinedExecutor) -> [SequenceEvent] {
        do {
            try executor.begin(plan)
            begun = plan
            return []
        } catch {
            return plan.jobs.flatMap { failJob($0.ticket, message: "\(error)") }
        }
    }

    private func secondsSinceStart(_ instant: ContinuousClock.Instant) -> Double {
        let elapsed = instant - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// Books a finished job and turns its samples into events (text, stop checks, finishing).
    private func completeJob(_ ticket: Int, result: StepResult) -> [SequenceEvent] {
        track(scheduler.complete(ticket: ticket, result: result))
    }

    /// Turns booked samples into events: text, stop checks, and finishing the sequences that end.
    private func track(_ booked: [(SequenceID, SampledToken)]) -> [SequenceEvent] {
        var events: [SequenceEvent] = []
        for (id, token) in booked {
            guard var tracker = trackers[id], let state = scheduler.sequences[id] else { continue }
            let (delta, finish) = tracker.append(token.tokenID, outputCount: state.outputTokens.count)
            trackers[id] = tracker
            events.append(SequenceEvent(sequenceID: id, token: token, textDelta: delta, finishReason: finish))
            if let finish {
                trackers[id] = nil
                scheduler.finish(id, reason: finish)
            }
        }
        return events
    }

    /// Ends the live sequences of a failed job with `message`.
    private func failJob(_ ticket: Int, message: String) -> [SequenceEvent] {
        scheduler.fail(ticket: ticket).map { id in
            trackers[id] = nil
            scheduler.finish(id, reason: .error)
            return SequenceEvent(sequenceID: id, token: nil, textDelta: "", finishReason: .error, errorMessage: message)
        }
    }
}

/// Accumulated time of the phases of engine steps: planning, running the plan (host launch and
/// the wait for the device), and turning samples into events.
public struct StepPhaseTimes: Sendable {
    /// Scheduler time.
    public var schedule: Duration = .zero
    /// Executor time (on a GPU: launching, then waiting for the samples).
    public var execute: Duration = .zero
    /// Bookkeeping of the results.
    public var postprocess: Duration = .zero
}

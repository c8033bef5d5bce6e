import Foundation
import LLMuxCore
import Synchronization

/// Errors a request stream can end with.
public enum EngineStreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request was refused or failed; the message says why.
    case failed(String)
    /// The engine is shutting down and takes no new requests.
    case shuttingDown
    /// The engine refused the request when it was queued (it can never run: bad parameters,
    /// prompt too long, more KV than the pool holds…); nothing was generated.
    case rejected(LLMuxError)

    /// The message.
    public var description: String {
        switch self {
        case .failed(let message): return message
        case .shuttingDown: return "the server is shutting down"
        case .rejected(let error): return error.description
        }
    }
}

/// A unit's engine loop on its own thread: it owns the `EngineCore` (and through it the
/// scheduler, KV pool and executor). Other tasks only `submit` requests and read the returned
/// streams; cancelling a stream aborts its request within one step.
public final class UnitEngine: Sendable {
    private struct Inbox: ~Copyable {
        var submissions: [(Int, GenerationRequest, AsyncThrowingStream<SequenceEvent, Error>.Continuation)] = []
        var cancellations: [Int] = []
        var accepting = true
        var stopped = false
        var nextTicket = 1
    }

    private let inbox = Mutex(Inbox())
    private let wakeUp = NSCondition()
    private let finished = NSCondition()
    private let loopDone = Mutex(false)
    private let published = Mutex(UnitStats())
    /// Models served by the unit.
    public let models: [ModelDescriptor]

    /// Load of the unit as of its last loop iteration (for metrics).
    public var stats: UnitStats { published.withLock { $0 } }

    /// Starts the loop over `core` (which must not be used by anyone else afterwards).
    public init(core: EngineCore) {
        models = core.models
        let box = CoreBox(core)
        let thread = Thread { [self] in self.runLoop(box.core) }
        thread.name = "llmux-unit"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Queues a request; the stream yields one event per generated token (the last one carries
    /// the finish reason) and throws when the request fails.
    public func submit(_ request: GenerationRequest) -> AsyncThrowingStream<SequenceEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream<SequenceEvent, Error>.makeStream()
        let ticket: Int? = inbox.withLock { inbox in
            guard inbox.accepting else { return nil }
            let ticket = inbox.nextTicket
            inbox.nextTicket += 1
            inbox.submissions.append((ticket, request, continuation))
            return ticket
        }
        guard let ticket else {
            continuation.finish(throwing: EngineStreamError.shuttingDown)
            return stream
        }
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(ticket) }
        }
        signal()
        return stream
    }

    /// Stops taking requests, lets the running ones finish, then ends the loop.
    public func shutdown() {
        inbox.withLock { $0.accepting = false }
        signal()
        finished.lock()
        while !loopDone.withLock({ $0 }) { finished.wait() }
        finished.unlock()
    }

    private func cancel(_ ticket: Int) {
        inbox.withLock { $0.cancellations.append(ticket) }
        signal()
    }

    private func signal() {
        wakeUp.lock()
        wakeUp.signal()
        wakeUp.unlock()
    }

    /// Drain the inbox, step, route events; sleep when idle. Jobs in flight on an asynchronous
    /// executor count as work (`hasWork`), so the loop keeps stepping until they are collected;
    /// a step with nothing new to launch blocks in the executor's `collect(wait: true)`, not here.
    private func runLoop(_ core: EngineCore) {
        var streams: [SequenceID: AsyncThrowingStream<SequenceEvent, Error>.Continuation] = [:]
        var sequenceByTicket: [Int: SequenceID] = [:]
        var ticketBySequence: [SequenceID: Int] = [:]
        while true {
            wakeUp.lock()
            let (submissions, cancellations, accepting) = inbox.withLock { inbox in
                let taken = (inbox.submissions, inbox.cancellations, inbox.accepting)
                inbox.submissions = []
                inbox.cancellations = []
                return taken
            }
            if submissions.isEmpty && cancellations.isEmpty && !core.hasWork {
                if !accepting { wakeUp.unlock(); break }
                wakeUp.wait()
                wakeUp.unlock()
                continue
            }
            wakeUp.unlock()

            for (ticket, request, continuation) in submissions {
                do {
                    let id = try core.add(request)
                    streams[id] = continuation
                    sequenceByTicket[ticket] = id
                    ticketBySequence[id] = ticket
                } catch let error as LLMuxError {
                    continuation.finish(throwing: EngineStreamError.rejected(error))
                } catch {
                    continuation.finish(throwing: EngineStreamError.failed("\(error)"))
                }
            }
            for ticket in cancellations {
                guard let id = sequenceByTicket.removeValue(forKey: ticket) else { continue }
                ticketBySequence[id] = nil
                _ = core.abort(id)
                streams.removeValue(forKey: id)?.finish()
            }
            for event in core.step() {
                guard let continuation = streams[event.sequenceID] else { continue }
                if event.finishReason == .error {
                    continuation.finish(throwing: EngineStreamError.failed(event.errorMessage ?? "engine error"))
                } else {
                    continuation.yield(event)
                    if event.finishReason != nil { continuation.finish() }
                }
                if event.finishReason != nil {
                    streams[event.sequenceID] = nil
                    if let ticket = ticketBySequence.removeValue(forKey: event.sequenceID) { sequenceByTicket[ticket] = nil }
                }
            }
            let snapshot = UnitStats(core: core)
            published.withLock { $0 = snapshot }
        }
        loopDone.withLock { $0 = true }
        finished.lock()
        finished.broadcast()
        finished.unlock()
    }
}

/// Running and waiting sequences and KV pages of a unit, by model.
public struct UnitStats: Sendable, Equatable {
    /// Sequences in the running batch.
    public var running: [ModelID: Int] = [:]
    /// Sequences queued for admission.
    public var waiting: [ModelID: Int] = [:]
    /// KV pages held.
    public var usedPages: [ModelID: Int] = [:]
    /// Pages in the unit's KV pool (summed over units when merged).
    public var totalPages = 0
    /// Pages of the pool each model draws from (its unit's pool).
    public var poolPages: [ModelID: Int] = [:]
    /// Sequences preempted (cache dropped, recomputed later) since the unit started.
    public var preemptions: [ModelID: Int] = [:]
    /// Times a running sequence waited a step for a free KV page since the unit started.
    public var pageWaits: [ModelID: Int] = [:]

    /// Empty statistics.
    public init() {}

    init(core: EngineCore) {
        let scheduler = core.schedulerState
        for model in core.models {
            running[model.id] = scheduler.runningCount(model.id)
            waiting[model.id] = scheduler.waitingCount(model.id)
            usedPages[model.id] = scheduler.kvCache.usedPagesByModel[model.id] ?? 0
            poolPages[model.id] = scheduler.kvCache.pool.pageCount
            preemptions[model.id] = scheduler.preemptionsByModel[model.id] ?? 0
            pageWaits[model.id] = scheduler.pageWaitsByModel[model.id] ?? 0
        }
        totalPages = scheduler.kvCache.pool.pageCount
    }
}

/// Carries the engine core onto the loop thread, which is its only user from then on.
private final class CoreBox: @unchecked Sendable {
    let core: EngineCore
    init(_ core: EngineCore) { self.core = core }
}

import LLMuxCore

/// An `AsynchronousExecutor` stand-in: it records every launched job and "runs" a job only when
/// it completes (through the synchronous `FakeExecutor`, so KV slots, page tables and context
/// lengths are checked for real and tokens depend only on each sequence's history). Jobs complete
/// when the test says, in any order, or, in `random` mode, a random subset at each collect.
final class AsyncFakeExecutor: AsynchronousExecutor {
    enum Mode {
        /// Only jobs passed to `finish` complete; `collect(wait: true)` with none ready returns nothing.
        case manual
        /// Each collect completes a random subset of the jobs in flight (at least one when waiting).
        case random(seed: UInt64)
    }

    let inner: FakeExecutor
    let multiprocessorCount: Int
    var mode: Mode
    private var random: TestRandom
    /// Every launched job, in launch order.
    private(set) var launched: [JobPlan] = []
    /// Jobs queued and not yet collected, in launch order.
    private(set) var pending: [JobPlan] = []
    /// Tickets the test marked finished (completed at the next collect).
    private var ready: Set<Int> = []
    /// Tickets that complete with a failure.
    var failing: Set<Int> = []
    /// Models whose next launched job fails when it completes.
    var failNextJobOf: Set<ModelID> = []
    /// When set, the next `launch` throws.
    var failNextLaunch = false
    /// What `configurePartitions` was asked for.
    private(set) var requestedPartitions: [[Int]]?
    /// How many `collect(wait: true)` calls were made.
    private(set) var waits = 0
    /// Launches of a job while another job of its model was in flight (on a GPU they run at once).
    private(set) var sameModelOverlaps = 0
    /// Those where both jobs would compute in the same activation buffers: both on the prefill
    /// lane, or both off it in the same phase (the buffer sets of `DecoderModel`).
    private(set) var sharedBufferOverlaps: [String] = []

    init(models: [(ModelID, tokensPerPage: Int)], pageCount: Int, multiprocessorCount: Int = 132, mode: Mode = .manual) {
        inner = FakeExecutor(models: models, pageCount: pageCount)
        self.multiprocessorCount = multiprocessorCount
        self.mode = mode
        if case .random(let seed) = mode { random = TestRandom(seed: seed) } else { random = TestRandom(seed: 1) }
    }

    var models: [ModelDescriptor] { inner.models }
    var pageCount: Int { inner.pageCount }
    func tokensPerPage(for model: ModelID) -> Int { inner.tokensPerPage(for: model) }
    var inFlightCount: Int { pending.count }

    func execute(_ plan: StepPlan) throws -> StepResult { try inner.execute(plan) }

    func configurePartitions(_ partitionings: [[Int]]) throws -> [[Int]] {
        requestedPartitions = partitionings
        return partitionings
    }

    struct LaunchFailure: Error, CustomStringConvertible {
        var description: String { "launch failed" }
    }

    func launch(_ plan: StepPlan) throws {
        if failNextLaunch {
            failNextLaunch = false
            throw LaunchFailure()
        }
        for job in plan.jobs {
            if failNextJobOf.remove(job.model) != nil { failing.insert(job.ticket) }
        }
        for job in plan.jobs {
            let others = pending.filter { $0.model == job.model }
            if !others.isEmpty { sameModelOverlaps += 1 }
            for other in others where Self.bufferSet(other) == Self.bufferSet(job) {
                sharedBufferOverlaps.append("#\(job.ticket) and #\(other.ticket) of \(job.model)")
            }
            pending.append(job)
        }
        launched += plan.jobs
    }

    /// Which of its model's activation buffers a job uses on a GPU (`ActivationSet` in Models).
    static func bufferSet(_ job: JobPlan) -> String { job.onPrefillLane ? "prefill lane" : job.phase.rawValue }

    /// Marks jobs finished; they are reported at the next collect.
    func finish(_ tickets: [Int]) { ready.formUnion(tickets) }

    /// The in-flight job of `model` in `phase`, if any.
    func pendingJob(_ model: ModelID, _ phase: JobPhase) -> JobPlan? {
        pending.first { $0.model == model && $0.phase == phase }
    }

    func collect(wait: Bool) -> [JobCompletion] {
        if wait { waits += 1 }
        if case .random = mode {
            for job in pending where random.next() % 3 == 0 { ready.insert(job.ticket) }
            if wait && ready.isEmpty, !pending.isEmpty { ready.insert(pending[Int(random.next() % UInt64(pending.count))].ticket) }
        }
        var done: [JobPlan] = pending.filter { ready.contains($0.ticket) }
        if case .random = mode { done.shuffle(using: &random) }
        pending.removeAll { ready.contains($0.ticket) }
        ready.subtract(done.map(\.ticket))
        return done.map { job in
            if failing.contains(job.ticket) {
                return JobCompletion(ticket: job.ticket, result: .failure(.engine("job \(job.ticket) failed on its partition")))
            }
            do {
                return JobCompletion(ticket: job.ticket, result: .success(try inner.execute(StepPlan(jobs: [job]))))
            } catch {
                return JobCompletion(ticket: job.ticket, result: .failure(.engine("\(error)")))
            }
        }
    }
}

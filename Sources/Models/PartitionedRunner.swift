import Compute
import Foundation
import LLMuxCore

/// The asynchronous executor of a unit on a device with SM partitions (CUDA green contexts): each
/// job of a plan is queued on a stream of the partition the scheduler chose, sampling included,
/// and `collect` hands back the jobs whose results reached the host, in whatever order they
/// finish. Weights and the KV pool are the wrapped `ModelRunner`'s (loaded once, shared by
/// every job of a model).
///
/// A prompt job's eager launch takes milliseconds of host time (hundreds of kernels and
/// products), during which no other lane can be given its next job. With `sliceLayers` > 0 a
/// prompt job is launched a slice of layers at a time, one slice per `collect` round, so the
/// decode lanes that finish meanwhile are relaunched between slices.
public final class PartitionedRunner: AsynchronousExecutor {
    /// The runner holding weights and the KV pool.
    public let runner: ModelRunner
    private let backend: any PartitionedBackend
    /// Stream index of each model inside a partition (jobs of different models on one partition
    /// run on different streams, so they overlap).
    private let streamIndex: [ModelID: Int]
    private var inFlight: [(ticket: Int, sequences: [SequenceID], samples: any PendingSamples)] = []
    private var finished: [JobCompletion] = []
    /// Decoder layers per slice of a prompt job's launch (0: launched whole).
    public let sliceLayers: Int
    /// The prompt job whose launch is under way, slice by slice (one at a time).
    private var sliced: SlicedLaunch?
    /// Prompt jobs launched in more than one slice so far.
    public private(set) var slicedJobCount = 0
    /// `LLMUX_TRACE_JOBS=1`: a line on standard error for every job launched and finished.
    private let trace = JobTracing.isEnabled
    private let started = Date()

    /// Wraps `runner`, whose backend must be `backend`. `sliceLayers` defaults to
    /// `LLMUX_PREFILL_SLICE_LAYERS` (0 when unset).
    public init(runner: ModelRunner, backend: any PartitionedBackend, sliceLayers: Int? = nil) {
        self.runner = runner
        self.backend = backend
        self.streamIndex = Dictionary(uniqueKeysWithValues: runner.models.enumerated().map { ($1.id, $0) })
        self.sliceLayers = max(0, sliceLayers ?? Int(ProcessInfo.processInfo.environment["LLMUX_PREFILL_SLICE_LAYERS"] ?? "") ?? 0)
    }

    /// A partitioned runner when `runner`'s backend has SM partitions, else nil.
    public static func wrapping(_ runner: ModelRunner, sliceLayers: Int? = nil) -> PartitionedRunner? {
        guard let backend = runner.backend as? any PartitionedBackend, backend.multiprocessorCount > 0 else { return nil }
        return PartitionedRunner(runner: runner, backend: backend, sliceLayers: sliceLayers)
    }

    /// The wrapped runner's models, each with a stream of its own in every partition.
    public var models: [ModelDescriptor] { runner.models }
    /// Pages of the wrapped runner's KV pool, shared by every partition.
    public var pageCount: Int { runner.pageCount }
    /// Tokens per KV page of `model`, as the wrapped runner stores them.
    public func tokensPerPage(for model: ModelID) -> Int { runner.tokensPerPage(for: model) }
    /// SMs of the device, which `configurePartitions` divides among partitions.
    public var multiprocessorCount: Int { backend.multiprocessorCount }
    /// Jobs in flight, failed launches not yet collected, and a prompt job still being launched slice by slice.
    public var inFlightCount: Int { inFlight.count + finished.count + (sliced == nil ? 0 : 1) }

    /// Runs a plan to the end on the main stream (profiling and checks).
    public func execute(_ plan: StepPlan) throws -> StepResult {
        precondition(inFlight.isEmpty && sliced == nil, "execute while jobs are in flight")
        return try runner.execute(plan)
    }

    /// Creates the partitionings with one stream per model in each partition. On failure, falls back to one
    /// partitioning of the whole device (so jobs on partitioning 0 still run) and rethrows.
    public func configurePartitions(_ partitionings: [[Int]]) throws -> [[Int]] {
        precondition(inFlight.isEmpty && sliced == nil, "configurePartitions while jobs are in flight")
        do {
            let granted = try backend.configurePartitions(partitionings, streamsPerPartition: runner.models.count)
            // Each engine configures its partitions first: the mark that starts its part of a trace.
            if trace { log("partitions \(granted)") }
            return granted
        } catch {
            // Keep the whole device usable: the engine then runs every job on partitioning 0.
            _ = try? backend.configurePartitions([[backend.multiprocessorCount]], streamsPerPartition: runner.models.count)
            throw error
        }
    }

    /// Queues the plan's decode jobs before its prompt jobs, each on its partition's stream for its model; with
    /// `sliceLayers` > 0 a prompt job starts a sliced launch (one at a time). Job failures come back from `collect`.
    public func launch(_ plan: StepPlan) throws {
        defer { backend.selectMainStream() }
        // Decode jobs first: their launches are short (recorded graphs), a prompt job's eager
        // launch takes milliseconds of host time, and their partitions should not idle meanwhile.
        for job in plan.jobs.filter({ $0.phase == .decode }) + plan.jobs.filter({ $0.phase != .decode }) {
            let launchStart = Date()
            let plansBefore = trace ? (backend as? CUDABackend)?.matmulPlanning : nil
            let stallsBefore = trace ? (backend as? CUDABackend)?.hostStalls : nil
            do {
                try selectStream(for: job)
                if sliceLayers > 0 && job.phase == .prefill && sliced == nil {
                    backend.beginSlicedLaunch()
                    sliced = SlicedLaunch(forward: try runner.beginSliced(job), started: launchStart)
                    advanceSlicedLaunch()
                    continue
                }
                let logits = try runner.forward(job)
                let forwardSeconds = Date().timeIntervalSince(launchStart)
                try enqueueSamples(of: job, logits: logits)
                if trace {
                    var details = ""
                    if let before = plansBefore, let after = (backend as? CUDABackend)?.matmulPlanning {
                        let milliseconds = (after.seconds - before.seconds) * 1000
                        details = String(format: ", %d cuBLASLt plans in %.2f ms", after.plans - before.plans, milliseconds)
                    }
                    if let before = stallsBefore, let stalls = (backend as? CUDABackend)?.hostStalls.since(before), !stalls.isEmpty {
                        details += ", " + stalls
                    }
                    traceLaunch(job, host: Date().timeIntervalSince(launchStart), forward: forwardSeconds, details: details)
                }
            } catch {
                finished.append(JobCompletion(ticket: job.ticket, result: .failure(Self.engineError(error))))
            }
        }
    }

    /// Longest a waiting `collect` blocks: a new request for an idle lane (another model's
    /// partition) need not wait for a long prefill elsewhere to end.
    static let longestWait = 0.002

    /// Hands back failed and finished jobs, advancing a sliced launch by one slice per round; with `wait`,
    /// polls until a job finishes or none is in flight, or, once no slice is left to launch, for `longestWait`.
    public func collect(wait: Bool) -> [JobCompletion] {
        var done = finished
        finished = []
        let deadline = Date().addingTimeInterval(Self.longestWait)
        while true {
            // One slice per round: lanes whose jobs ended are relaunched by the engine in between.
            if sliced != nil {
                advanceSlicedLaunch()
                done += finished
                finished = []
            }
            var pending: [(ticket: Int, sequences: [SequenceID], samples: any PendingSamples)] = []
            for job in inFlight {
                do {
                    guard try job.samples.isReady() else {
                        pending.append(job)
                        continue
                    }
                    let tokens = try job.samples.results()
                    if trace { log("done #\(job.ticket)") }
                    done.append(JobCompletion(ticket: job.ticket, result: .success(
                        StepResult(samples: Dictionary(uniqueKeysWithValues: zip(job.sequences, tokens))))))
                } catch {
                    done.append(JobCompletion(ticket: job.ticket, result: .failure(Self.engineError(error))))
                }
            }
            inFlight = pending
            if !wait || !done.isEmpty || (inFlight.isEmpty && sliced == nil) { return done }
            if sliced == nil {
                if Date() >= deadline { return done }
                // Jobs last milliseconds; a short sleep keeps the loop thread off the CPU meanwhile.
                usleep(20)
            }
        }
    }

    /// Launches the next slice of the sliced prompt job; after its last layer, the logits and
    /// the sampling (the job is then in flight like any other). A failure fails the job only.
    private func advanceSlicedLaunch() {
        guard var launch = sliced else { return }
        defer { backend.selectMainStream() }
        let sliceStart = Date()
        let job = launch.forward.job
        do {
            try selectStream(for: job)
            let complete = try launch.forward.advance(layers: sliceLayers)
            launch.slices += 1
            if launch.slices == 2 { slicedJobCount += 1 }
            guard complete else {
                launch.hostSeconds += Date().timeIntervalSince(sliceStart)
                sliced = launch
                return
            }
            // Every kernel that reads the job's uploads is queued: the upload ring may fence again.
            sliced = nil
            backend.endSlicedLaunch()
            let logits = try launch.forward.finish()
            let forwardSeconds = launch.hostSeconds + Date().timeIntervalSince(sliceStart)
            try enqueueSamples(of: job, logits: logits)
            if trace {
                traceLaunch(job, host: launch.hostSeconds + Date().timeIntervalSince(sliceStart), forward: forwardSeconds,
                            details: String(format: ", %d slices over %.2f ms", launch.slices,
                                            Date().timeIntervalSince(launch.started) * 1000))
            }
        } catch {
            if sliced != nil {
                sliced = nil
                backend.endSlicedLaunch()
            }
            finished.append(JobCompletion(ticket: job.ticket, result: .failure(Self.engineError(error))))
        }
    }

    /// Selects the stream of `job`'s partition (its model's stream there).
    private func selectStream(for job: JobPlan) throws {
        try backend.selectStream(partitioning: job.partitioning, partition: job.partition, stream: streamIndex[job.model] ?? 0)
    }

    /// Queues the sampling of `job`'s logits; the job is in flight from here.
    private func enqueueSamples(of job: JobPlan, logits: Tensor) throws {
        let sampling = job.sequences.filter { $0.sample != nil }
        let samples = try backend.enqueueSample(logits: logits, requests: sampling.map { $0.sample! })
        inFlight.append((job.ticket, sampling.map(\.sequenceID), samples))
    }

    private func traceLaunch(_ job: JobPlan, host: Double, forward: Double, details: String) {
        log("launch #\(job.ticket) \(job.model.name) \(job.phase.rawValue) on \(job.partitioning)/\(job.partition): "
            + "\(job.tokenIDs.count) tokens, \(job.sequences.count) sequences"
            + String(format: " (host %.2f ms, forward %.2f ms%@)", host * 1000, forward * 1000, details))
    }

    private func log(_ line: String) {
        FileHandle.standardError.write(Data(String(format: "[%9.3f] %@\n", Date().timeIntervalSince(started), line).utf8))
    }

    private static func engineError(_ error: Error) -> LLMuxError {
        (error as? LLMuxError) ?? .engine("\(error)")
    }
}

/// A prompt job launched slice by slice: its pass, when it began, and the host time so far.
private struct SlicedLaunch {
    let forward: SlicedForward
    let started: Date
    var slices = 0
    var hostSeconds = 0.0
}

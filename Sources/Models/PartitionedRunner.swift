import Compute
import Foundation
import LLMuxCore

/// The asynchronous executor of a unit on a device with SM partitions (CUDA green contexts): each
/// job of a plan is queued on a stream of the partition the scheduler chose, sampling included,
/// and `collect` hands back the jobs whose results reached the host, in whatever order they
/// finish. Weights and the KV pool are the wrapped `ModelRunner`'s (loaded once, shared by
/// every job of a model).
public final class PartitionedRunner: AsynchronousExecutor {
    /// The runner holding weights and the KV pool.
    public let runner: ModelRunner
    private let backend: any PartitionedBackend
    /// Stream index of each model inside a partition (jobs of different models on one partition
    /// run on different streams, so they overlap).
    private let streamIndex: [ModelID: Int]
    private var inFlight: [(ticket: Int, sequences: [SequenceID], samples: any PendingSamples)] = []
    private var finished: [JobCompletion] = []
    /// `LLMUX_TRACE_JOBS=1`: a line on standard error for every job launched and finished.
    private let trace = ProcessInfo.processInfo.environment["LLMUX_TRACE_JOBS"] == "1"
    private let started = Date()

    /// Wraps `runner`, whose backend must be `backend`.
    public init(runner: ModelRunner, backend: any PartitionedBackend) {
        self.runner = runner
        self.backend = backend
        self.streamIndex = Dictionary(uniqueKeysWithValues: runner.models.enumerated().map { ($1.id, $0) })
    }

    /// A partitioned runner when `runner`'s backend has SM partitions, else nil.
    public static func wrapping(_ runner: ModelRunner) -> PartitionedRunner? {
        guard let backend = runner.backend as? any PartitionedBackend, backend.multiprocessorCount > 0 else { return nil }
        return PartitionedRunner(runner: runner, backend: backend)
    }

    public var models: [ModelDescriptor] { runner.models }
    public var pageCount: Int { runner.pageCount }
    public func tokensPerPage(for model: ModelID) -> Int { runner.tokensPerPage(for: model) }
    public var multiprocessorCount: Int { backend.multiprocessorCount }
    public var inFlightCount: Int { inFlight.count + finished.count }

    /// Runs a plan to the end on the main stream (profiling and checks).
    public func execute(_ plan: StepPlan) throws -> StepResult {
        precondition(inFlight.isEmpty, "execute while jobs are in flight")
        return try runner.execute(plan)
    }

    public func configurePartitions(_ partitionings: [[Int]]) throws -> [[Int]] {
        precondition(inFlight.isEmpty, "configurePartitions while jobs are in flight")
        do {
            return try backend.configurePartitions(partitionings, streamsPerPartition: runner.models.count)
        } catch {
            // Keep the whole device usable: the engine then runs every job on partitioning 0.
            _ = try? backend.configurePartitions([[backend.multiprocessorCount]], streamsPerPartition: runner.models.count)
            throw error
        }
    }

    public func launch(_ plan: StepPlan) throws {
        defer { backend.selectMainStream() }
        // Decode jobs first: their launches are short (recorded graphs), a prompt job's eager
        // launch takes milliseconds of host time, and their partitions should not idle meanwhile.
        for job in plan.jobs.filter({ $0.phase == .decode }) + plan.jobs.filter({ $0.phase != .decode }) {
            let sampling = job.sequences.filter { $0.sample != nil }
            let launchStart = Date()
            let plansBefore = (backend as? CUDABackend)?.matmulPlanning
            let stallsBefore = (backend as? CUDABackend)?.hostStalls
            var forwardSeconds = 0.0
            do {
                try backend.selectStream(partitioning: job.partitioning, partition: job.partition, stream: streamIndex[job.model] ?? 0)
                let logits = try runner.forward(job)
                forwardSeconds = Date().timeIntervalSince(launchStart)
                let samples = try backend.enqueueSample(logits: logits, requests: sampling.map { $0.sample! })
                inFlight.append((job.ticket, sampling.map(\.sequenceID), samples))
                if trace {
                    var plans = ""
                    if let before = plansBefore, let after = (backend as? CUDABackend)?.matmulPlanning {
                        let count = after.plans - before.plans
                        let milliseconds = (after.seconds - before.seconds) * 1000
                        plans = String(format: ", %d cuBLASLt plans in %.2f ms", count, milliseconds)
                    }
                    if let before = stallsBefore, let stalls = (backend as? CUDABackend)?.hostStalls.since(before), !stalls.isEmpty {
                        plans += ", " + stalls
                    }
                    log("launch #\(job.ticket) \(job.model.name) \(job.phase.rawValue) on \(job.partitioning)/\(job.partition): "
                        + "\(job.tokenIDs.count) tokens, \(job.sequences.count) sequences"
                        + String(format: " (host %.2f ms, forward %.2f ms%@)", Date().timeIntervalSince(launchStart) * 1000,
                                 forwardSeconds * 1000, plans))
                }
            } catch {
                finished.append(JobCompletion(ticket: job.ticket, result: .failure(Self.engineError(error))))
            }
        }
    }

    /// Longest a waiting `collect` blocks: a new request for an idle lane (another model's
    /// partition) need not wait for a long prefill elsewhere to end.
    static let longestWait = 0.002

    public func collect(wait: Bool) -> [JobCompletion] {
        var done = finished
        finished = []
        let deadline = Date().addingTimeInterval(Self.longestWait)
        while true {
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
            if !wait || !done.isEmpty || inFlight.isEmpty || Date() >= deadline { return done }
            // Jobs last milliseconds; a short sleep keeps the loop thread off the CPU meanwhile.
            usleep(20)
        }
    }

    private func log(_ line: String) {
        FileHandle.standardError.write(Data(String(format: "[%9.3f] %@\n", Date().timeIntervalSince(started), line).utf8))
    }

    private static func engineError(_ error: Error) -> LLMuxError {
        (error as? LLMuxError) ?? .engine("\(error)")
    }
}

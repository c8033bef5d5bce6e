import ArgumentParser
import Compute
import Engine
import Foundation
import KVMemory
import LLMuxCore
import Models
import Placement
import Scheduling

/// `llmux profile`: measures the cost table of a device (the CPU, or a CUDA GPU at several SM
/// shares), or writes a GPU's analytic roofline.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Measure job latencies (prefill by tokens, decode by batch and context) into a cost table.",
        discussion: """
            On the CPU or a CUDA GPU (--device cpu|cuda[:N]), times synthetic step plans through the model runner (the \
            same code `llmux serve` runs). On CUDA every grid point is measured at each of --sm-shares: the job runs on a \
            green-context SM partition of that share of the GPU, as the mux scheduler runs it. The CPU has no SM \
            partitions, so its table has share 1.0 only; instead every CPU point is also measured cold (after reading \
            twice the last-level cache), as a pass right after another model's runs, and the engine's own time per \
            step and per sequence is timed around the executor call. For h100/h200 this writes the analytic roofline instead \
            (--model NAME=PRESET or NAME=PATH); the file then says `"source": "roofline"`.
            """)

    @Option(help: "cpu or cuda[:N] to measure; h100 or h200 for the analytic roofline.") var device = "cpu"
    @Option(name: .customLong("model"), help: "NAME=PATH of a checkpoint, or NAME=PRESET for a roofline (repeat).") var models: [String] = []
    @Option(help: "Write the table here.") var out = "cost-table.json"
    @Option(help: "CPU threads (default: all cores).") var threads: Int?
    @Option(help: "Timed repetitions per point and pass.") var repeats = 3
    @Option(help: "Passes over the whole grid; the median of every pass's samples is kept, so a burst of load from other processes moves it less.") var passes = 3
    @Option(help: "Comma-separated prefill chunk lengths.") var tokens = "1,16,32,64,128,256,512"
    @Option(help: "Comma-separated decode batch sizes.") var batches = "1,2,4,8,16,32,64"
    @Option(help: "Comma-separated decode context lengths (default \(Self.cpuContexts) on the CPU, where a small model's KV cache outgrows the last-level cache past 1024 tokens and a line through shorter contexts underprices it; \(Self.gpuContexts) on CUDA); each model's grid stops at its max_position_embeddings.")
    var contexts: String?

    /// Default context grids: the CPU's reaches `bench mux`'s longest sequences (4,096 tokens).
    static let cpuContexts = "16,128,512,1024,2048,4096", gpuContexts = "16,128,512,1024"
    @Option(help: "Comma-separated SM shares to measure on CUDA (fractions of the GPU's SMs).") var smShares = "0.25,0.5,0.75,1"

    func run() throws {
        guard !models.isEmpty else { throw ValidationError("name at least one --model NAME=PATH") }
        let named = try models.map { text -> (String, String) in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--model takes NAME=PATH, got \(text)") }
            return (parts[0], parts[1])
        }
        let table: CostTable
        if let choice = DeviceChoice(argument: device) {
            table = try measure(named, on: choice)
        } else {
            guard let spec = DeviceSpec.presets[device] else { throw ValidationError("--device must be cpu, h100 or h200") }
            let shapes = try named.map { name, source -> (String, ModelShape) in
                if let shape = PlacementInput.shape(named: source) { return (name, shape) }
                return (name, try PlacementInput.shape(path: source, name: name))
            }
            table = Roofline(device: spec).table(models: shapes)
            report("no GPU profiler yet: wrote the \(device) roofline")
        }
        try PlacementInput.writeJSON(table, to: out)
        print("wrote \(out): \(table.entries.count) entries, source \(table.source.rawValue)")
    }

    private func list(_ text: String) throws -> [Int] {
        let values = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values == values.sorted(), Set(values).count == values.count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("grids must be ascending positive integers, got \(text)")
        }
        return values
    }

    private func measure(_ named: [(String, String)], on choice: DeviceChoice) throws -> CostTable {
        let backend = try choice.makeBackend(threads: threads)
        // The CPU backend speaks the partition protocol only to emulate SMs in tests: without
        // SMs there is one share to measure.
        let partitioned = (backend as? any PartitionedBackend).flatMap { $0.multiprocessorCount > 0 ? $0 : nil }
        let shares = partitioned == nil ? [1.0] : smShares.split(separator: ",").compactMap { Double($0) }.filter { $0 > 0 && $0 <= 1 }
        guard !shares.isEmpty else { throw ValidationError("--sm-shares must list fractions in (0, 1]") }
        let tokenGrid = try list(tokens), batchGrid = try list(batches)
        let allContexts = try list(contexts ?? (partitioned == nil ? Self.cpuContexts : Self.gpuContexts))
        var entries: [CostEntry] = []
        var overheads: [(perStep: Double, perSequence: Double)] = []
        // The CPU also gets cold-cache figures (`CostEntry.coldPrefillSeconds`): a model's pass
        // right after another model's finds none of its weights in the caches.
        let evictor = partitioned == nil ? CacheEvictor() : nil
        for (name, path) in named {
            let checkpoint = try openCheckpoint(path)
            let id = ModelID(name)
            noteWeightRounding([(id, checkpoint)], backend: backend)
            let config = checkpoint.config
            // A model never decodes past its position limit.
            let fitting = allContexts.filter { $0 <= config.maxPositionEmbeddings }
            let contextGrid = fitting.isEmpty ? [allContexts[0]] : fitting
            let most = max(tokenGrid.last!, batchGrid.last! * (contextGrid.last! + 1))
            let runner = try ModelRunner(checkpoints: [(id, checkpoint)], backend: backend, kvCacheBytes: kvBytes(forTokens: most + 64 * batchGrid.last!, config: config))
            let asynchronous = PartitionedRunner.wrapping(runner)
            /// Runs a plan to its end: on the selected SM share when the device has partitions.
            var sharePartitioning = 0
            func execute(_ plan: StepPlan) throws {
                guard let asynchronous else { _ = try runner.execute(plan); return }
                var placed = plan
                for index in placed.jobs.indices {
                    placed.jobs[index].partitioning = sharePartitioning
                    placed.jobs[index].partition = 0
                }
                try asynchronous.launch(placed)
                var completions: [JobCompletion] = []
                while asynchronous.inFlightCount > 0 { completions += asynchronous.collect(wait: true) }
                for completion in completions {
                    if case .failure(let error) = completion.result { throw error }
                }
            }
            var cache = KVCacheManager(pageCount: runner.pageCount, tokensPerPageByModel: [id: runner.tokensPerPage(for: id)])
            let vocab = config.vocabSize

            /// Seconds of executing one job of `sequences` (query tokens, context after the job), `repeats` times;
            /// `cold`: each run after the CPU caches were filled with other data.
            func time(_ sequences: [(query: Int, context: Int)], phase: JobPhase, cold: Bool = false) throws -> [Double] {
                var job = JobPlan(model: id, phase: phase, tokenIDs: [], positions: [], slotMapping: [], sequences: [])
                for (index, sequence) in sequences.enumerated() {
                    let sid = SequenceID(UInt64(index + 1))
                    guard cache.reserve(sid, model: id, tokens: sequence.context) else { throw CommandFailure("profile pool too small") }
                    let start = sequence.context - sequence.query
                    let queryStart = job.tokenIDs.count
                    for position in start..<sequence.context {
                        job.tokenIDs.append(TokenID(3 + (position * 7 + index) % max(1, vocab - 3)))
                        job.positions.append(Int32(position))
                        job.slotMapping.append(cache.slot(sid, model: id, position: position))
                    }
                    job.sequences.append(SequencePlan(
                        sequenceID: sid, queryStart: queryStart, queryCount: sequence.query, contextLength: sequence.context,
                        pageTable: cache.pageTable(sid),
                        sample: SampleRequest(parameters: SamplingParameters(seed: 1, maxTokens: 1), generatedCount: 0)))
                }
                defer { for index in sequences.indices { cache.release(SequenceID(UInt64(index + 1))) } }
                let plan = StepPlan(jobs: [job])
                // After other data went through the caches (a cold point, another model) a small
                // model's weights take several runs to settle in them: one warm-up run left
                // "warm" figures of llama-s twice their steady value, three still 50 % above. So a
                // warm point warms up for at least three runs and 50 ms.
                let warmUntil = DispatchTime.now().uptimeNanoseconds + (cold ? 0 : 50_000_000)
                var warmUps = 0
                while warmUps < (cold ? 1 : 3) || DispatchTime.now().uptimeNanoseconds < warmUntil {
                    try execute(plan)
                    warmUps += 1
                }
                var samples: [Double] = []
                for _ in 0..<max(1, repeats) {
                    if cold { evictor?.evict() }
                    let start = DispatchTime.now().uptimeNanoseconds
                    try execute(plan)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                return samples
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

            var prefillByShare: [[Double]] = []
            var decodeByShare: [[[Double]]] = []
            var coldPrefill: [Double] = []
            var coldDecode: [[Double]] = []
            for share in shares {
                if let asynchronous {
                    // Partitioning 1 is this share of the SMs (rounded to the device's groups of 8) and the rest.
                    let count = asynchronous.multiprocessorCount
                    let sms = min(count, max(8, Int((Double(count) * share / 8).rounded()) * 8))
                    let granted = try asynchronous.configurePartitions(sms >= count ? [[count]] : [[count], [sms, count - sms]])
                    sharePartitioning = granted.count - 1
                    report("profiling \(name) on \(granted[sharePartitioning][0]) of \(count) SMs …")
                }
                var prefillSamples = tokenGrid.map { _ in [Double]() }
                var decodeSamples = batchGrid.map { _ in contextGrid.map { _ in [Double]() } }
                var coldPrefillSamples = prefillSamples
                var coldDecodeSamples = decodeSamples
                for pass in 0..<max(1, passes) {
                    report("profiling \(name): pass \(pass + 1) of \(max(1, passes)) …")
                    // The warm sweep first, then the cold one, so that warm points follow warm ones.
                    for cold in evictor == nil ? [false] : [false, true] {
                        for (i, tokens) in tokenGrid.enumerated() {
                            let samples = try time([(query: tokens, context: tokens)], phase: .prefill, cold: cold)
                            if cold { coldPrefillSamples[i] += samples } else { prefillSamples[i] += samples }
                        }
                        for (i, batch) in batchGrid.enumerated() {
                            for (j, context) in contextGrid.enumerated() {
                                let samples = try time(Array(repeating: (query: 1, context: context), count: batch), phase: .decode, cold: cold)
                                if cold { coldDecodeSamples[i][j] += samples } else { decodeSamples[i][j] += samples }
                            }
                        }
                    }
                }
                prefillByShare.append(prefillSamples.map(median))
                decodeByShare.append(decodeSamples.map { $0.map(median) })
                if evictor != nil {
                    coldPrefill = coldPrefillSamples.map(median)
                    coldDecode = coldDecodeSamples.map { $0.map(median) }
                }
            }
            // Engine overhead: what a step of the real engine loop takes beyond the executor's
            // own time, measured around the executor itself (the difference of two separately
            // measured times would be mostly their noise), with 1 and with 8 decoding sequences:
            // scheduling and bookkeeping grow with the sequences a step carries.
            func engineOverhead(sequences: Int) throws -> Double {
                let tracer = TracingExecutor(runner)
                let engine = EngineCore(executor: tracer, tokenizers: [:], limits: SchedulerLimits(maxTokensPerStep: 512, maxSequencesPerStep: 256))
                for _ in 0..<sequences {
                    try engine.add(GenerationRequest(model: id, promptTokens: (0..<16).map { TokenID(3 + $0) },
                                                     parameters: SamplingParameters(maxTokens: 64, stopAtEOS: false)))
                }
                _ = engine.step()
                var times: [Double] = []
                for _ in 0..<40 {
                    tracer.reset()
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = engine.step()
                    let step = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if let executed = tracer.last { times.append(step - executed.seconds) }
                }
                while engine.hasWork { _ = engine.step() }
                return median(times)
            }
            let one = try engineOverhead(sequences: 1), eight = try engineOverhead(sequences: 8)
            overheads.append((perStep: one - (eight - one) / 7, perSequence: (eight - one) / 7))
            entries.append(CostEntry(model: name, meshSize: 1, smShares: shares, prefillTokens: tokenGrid.map(Double.init),
                                     prefillSeconds: prefillByShare, decodeBatches: batchGrid.map(Double.init),
                                     decodeContexts: contextGrid.map(Double.init), decodeSeconds: decodeByShare,
                                     coldPrefillSeconds: evictor == nil ? nil : [coldPrefill],
                                     coldDecodeSeconds: evictor == nil ? nil : [coldDecode]))
        }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "?"
        return CostTable(device: partitioned == nil ? "cpu" : backend.deviceName, source: .measured, note: """
            Measured by `llmux profile` on \(backend.deviceName) through the model runner (median of \(passes) passes × \(repeats) runs, each after warm-up runs: warm points at least three and 50 ms; \
            load average \(load) at the end). SM shares \(shares) (on CUDA each share is a green-context partition; the CPU has share 1.0 only).
            \(evictor.map { "Cold figures: each run after reading \($0.bytes >> 20) MiB of other data (twice the last-level cache). " } ?? "")\
            Step overhead (the engine's time per step beyond its executor call; medians of steps on 1 and on 8 decoding sequences), \
            per model \(overheads.map { String(format: "%.3f ms + %.3f ms per sequence", $0.perStep * 1000, $0.perSequence * 1000) }.joined(separator: ", ")).
            """, entries: entries, stepOverhead: max(0, overheads.map(\.perStep).sorted()[overheads.count / 2]),
            stepOverheadPerSequence: max(0, overheads.map(\.perSequence).sorted()[overheads.count / 2]))
    }
}

/// Fills the CPU caches with other data, so that the next pass finds none of its own there.
final class CacheEvictor {
    /// Bytes read per eviction: twice the last-level cache (64 MiB when it cannot be read), so
    /// that nothing read before survives whatever the replacement policy.
    let bytes: Int
    private let buffer: UnsafeMutableRawBufferPointer
    /// Keeps the reads from being optimised away.
    private(set) var sink: UInt64 = 0

    init() {
        bytes = 2 * (Self.lastLevelCacheBytes() ?? 32 << 20)
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
        for offset in stride(from: 0, to: bytes, by: 8) { buffer.storeBytes(of: UInt64(offset), toByteOffset: offset, as: UInt64.self) }
    }

    deinit { buffer.deallocate() }

    /// Reads one word of every cache line of the buffer.
    func evict() {
        var sum: UInt64 = 0
        for offset in stride(from: 0, to: bytes, by: 64) { sum &+= buffer.load(fromByteOffset: offset, as: UInt64.self) }
        sink &+= sum
    }

    /// The largest cache level of CPU 0 from sysfs (Linux), or nil.
    static func lastLevelCacheBytes() -> Int? {
        var largest: Int?
        for index in 0..<8 {
            guard let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cache/index\(index)/size", encoding: .utf8)
            else { continue }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let unit: Int = trimmed.hasSuffix("K") ? 1 << 10 : trimmed.hasSuffix("M") ? 1 << 20 : 1
            guard let value = Int(trimmed.trimmingCharacters(in: CharacterSet.decimalDigits.inverted)) else { continue }
            largest = max(largest ?? 0, value * unit)
        }
        return largest
    }
}

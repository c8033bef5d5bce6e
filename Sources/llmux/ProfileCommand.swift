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
            On the CPU or a CUDA GPU (--device cpu|cuda[:N]), times synthetic step plans through the model runner (the
            same code `llmux serve` runs). On CUDA every grid point is measured at each of --sm-shares: the job runs on a
            green-context SM partition of that share of the GPU, as the mux scheduler runs it. The CPU has no SM
            partitions, so its table has share 1.0 only. For h100/h200 this writes the analytic roofline instead
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
    @Option(help: "Comma-separated decode context lengths.") var contexts = "16,128,512,1024"
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
        let partitioned = backend as? any PartitionedBackend
        let shares = partitioned == nil ? [1.0] : smShares.split(separator: ",").compactMap { Double($0) }.filter { $0 > 0 && $0 <= 1 }
        guard !shares.isEmpty else { throw ValidationError("--sm-shares must list fractions in (0, 1]") }
        let tokenGrid = try list(tokens), batchGrid = try list(batches), contextGrid = try list(contexts)
        var entries: [CostEntry] = []
        var overheads: [Double] = []
        for (name, path) in named {
            let checkpoint = try openCheckpoint(path)
            let id = ModelID(name)
            let config = checkpoint.config
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

            /// Seconds of executing one job of `sequences` (query tokens, context after the job), `repeats` times.
            func time(_ sequences: [(query: Int, context: Int)], phase: JobPhase) throws -> [Double] {
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
                try execute(plan)
                var samples: [Double] = []
                for _ in 0..<max(1, repeats) {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try execute(plan)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                return samples
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

            var prefillByShare: [[Double]] = []
            var decodeByShare: [[[Double]]] = []
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
                for pass in 0..<max(1, passes) {
                    report("profiling \(name): pass \(pass + 1) of \(max(1, passes)) …")
                    for (i, tokens) in tokenGrid.enumerated() {
                        prefillSamples[i] += try time([(query: tokens, context: tokens)], phase: .prefill)
                    }
                    for (i, batch) in batchGrid.enumerated() {
                        for (j, context) in contextGrid.enumerated() {
                            decodeSamples[i][j] += try time(Array(repeating: (query: 1, context: context), count: batch), phase: .decode)
                        }
                    }
                }
                prefillByShare.append(prefillSamples.map(median))
                decodeByShare.append(decodeSamples.map { $0.map(median) })
            }
            let prefill = prefillByShare.last!
            let decode = decodeByShare.last!
            // Engine overhead: steps of the real engine loop on a decode batch of 8 minus the
            // decode job they run, as just measured.
            let engine = EngineCore(executor: runner, tokenizers: [:], limits: SchedulerLimits(maxTokensPerStep: 512, maxSequencesPerStep: 256))
            for _ in 0..<8 {
                try engine.add(GenerationRequest(model: id, promptTokens: (0..<16).map { TokenID(3 + $0) },
                                                 parameters: SamplingParameters(maxTokens: 64, stopAtEOS: false)))
            }
            _ = engine.step()
            var stepTimes: [Double] = []
            for _ in 0..<40 {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = engine.step()
                stepTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let decodeEntry = CostEntry(model: name, meshSize: 1, smShares: [1.0], prefillTokens: tokenGrid.map(Double.init),
                                        prefillSeconds: [prefill], decodeBatches: batchGrid.map(Double.init),
                                        decodeContexts: contextGrid.map(Double.init), decodeSeconds: [decode])
            overheads.append(median(stepTimes) - decodeEntry.decode(batch: 8, context: 37))
            while engine.hasWork { _ = engine.step() }
            entries.append(CostEntry(model: name, meshSize: 1, smShares: shares, prefillTokens: tokenGrid.map(Double.init),
                                     prefillSeconds: prefillByShare, decodeBatches: batchGrid.map(Double.init),
                                     decodeContexts: contextGrid.map(Double.init), decodeSeconds: decodeByShare))
        }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "?"
        return CostTable(device: partitioned == nil ? "cpu" : backend.deviceName, source: .measured, note: """
            Measured by `llmux profile` on \(backend.deviceName) through the model runner (median of \(passes) passes × \(repeats) runs, each after a warm-up; \
            load average \(load) at the end). SM shares \(shares) (on CUDA each share is a green-context partition; the CPU has share 1.0 only).
            Step overhead: median over models of (an engine step on 8 decoding sequences − its decode job), \
            per model \(overheads.map { String(format: "%.3f ms", $0 * 1000) }.joined(separator: ", ")).
            """, entries: entries, stepOverhead: max(0, overheads.sorted()[overheads.count / 2]))
    }
}

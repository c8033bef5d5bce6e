import ArgumentParser
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling

/// `llmux bench engine`: prefill and decode throughput at several batch sizes, each beside the
/// roofline measured in the same run (read bandwidth for decode; a BLAS matmul for prefill).
struct BenchEngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Measure prefill and decode tokens/s against memory-bandwidth and matmul rooflines.",
        discussion: """
            Decode roofline: batch tokens per max(weight bytes / bandwidth, step FLOPs / matmul rate), the \
            bandwidth from a multithreaded read of a 512 MiB buffer (on CUDA, a device copy). Prefill roofline: the model's matmul FLOPs at the rate numpy's BLAS reaches \
            on the model's own shape (python3 with numpy; skipped if absent). The table is printed last.
            """)

    @Option(help: "Checkpoint directory; default: the llama-100m preset written to the cache folder.")
    var model: String?
    @Option(help: "Preset to write when --model is not given.")
    var preset = "llama-100m"
    @Option(help: "Comma-separated batch sizes.")
    var batches = "1,8,32"
    @Option(help: "Prompt tokens per sequence.")
    var promptLength = 128
    @Option(help: "Each sequence generates this many tokens plus 2; the decode phase (timed) runs until all are done.")
    var decodeSteps = 16
    @Option(help: "CPU threads (default: all cores).")
    var threads: Int?
    @Option(help: "Device: cpu or cuda[:N]. On CUDA the rooflines are a device-to-device copy and cuBLASLt bf16.")
    var device: DeviceChoice = .cpu
    @Option(help: "Write the results as JSON to this file.")
    var json: String?
    @Option(help: "Token budget of one step (default: 8192 on a GPU, as for `llmux serve`; 2048 on the CPU, as in the recorded CPU results).")
    var maxTokensPerStep: Int?

    /// The step budget in use.
    var tokensPerStep: Int { maxTokensPerStep ?? (device.isCUDA ? device.defaultTokensPerStep : 2048) }
    @Flag(help: "Time every step on the GPU too (CUDA): GPU milliseconds per prefill and decode step against the host's, the gap the GPU waited, and the cuBLASLt plans made during the prefill steps.")
    var trace = false

    func run() throws {
        let path = try model ?? presetPath(preset)
        let checkpoint = try openCheckpoint(path)
        let backend = try device.makeBackend(threads: threads)
        noteWeightRounding([(ModelID("bench"), checkpoint)], backend: backend)
        let config = checkpoint.config
        let batchSizes = batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 > 0 }) else { throw ValidationError("--batches must list positive integers") }

        let bandwidth: Double
        let blas: Double?
        let ownMatmul: Double
        let reference: String
        var shape = (m: min(512, promptLength * batchSizes.max()!), n: config.intermediateSize, k: config.hiddenSize)
        if let cuda = backend as? CUDABackend {
            report("measuring device copy bandwidth and cuBLASLt bf16 rates …")
            shape.m = min(4096, promptLength * batchSizes.max()!)
            bandwidth = try cuda.measureCopyBandwidth(bytes: 1 << 30)
            blas = try cuda.measureMatmul(m: shape.m, n: shape.n, k: shape.k) * 1000
            ownMatmul = try cuda.measureMatmul(m: 8192, n: 8192, k: 8192) * 1000
            reference = "cuBLASLt"
        } else {
            report("measuring memory bandwidth …")
            bandwidth = Kernels.measureReadBandwidth(bytes: 512 << 20, repeats: 5)
            report("measuring BLAS and LLMux matmul rates on \(shape.m)x\(shape.n)x\(shape.k) …")
            blas = BLASReference.measure(m: shape.m, n: shape.n, k: shape.k, threads: threads)
            ownMatmul = Kernels.measureMatmul(m: shape.m, n: shape.n, k: shape.k, dtype: .f32)
            reference = "BLAS"
        }

        var cost = ModelCost(checkpoint: checkpoint)
        if device.isCUDA { cost.useBytesPerElement(backend.activationDType.byteSize) }
        let tokensPerSequence = promptLength + decodeSteps + 2
        let runner = try ModelRunner(checkpoints: [(ModelID("bench"), checkpoint)], backend: backend,
                                     kvCacheBytes: batchSizes.max()! * kvBytes(forTokens: tokensPerSequence, config: config))
        report("warming up …")
        _ = try measure(runner: runner, vocabulary: config.vocabSize, batch: batchSizes[0], promptLength: min(promptLength, 64), steps: 2)
        var rows: [BenchRow] = []
        for batch in batchSizes {
            report("batch \(batch): prefill \(batch)×\(promptLength) tokens, then \(decodeSteps) decode steps …")
            let timing = try measure(runner: runner, vocabulary: config.vocabSize, batch: batch, promptLength: promptLength,
                                     steps: decodeSteps, timer: trace ? (backend as? CUDABackend)?.makeStepTimer() : nil,
                                     cuda: backend as? CUDABackend)
            let prefillTokens = Double(batch * promptLength)
            let prefillFlops = cost.prefillFlops(batch: batch, promptLength: promptLength)
            let decodeRate = Double(timing.decodeTokens) / timing.decodeSeconds
            // A decode step cannot beat streaming the weights once, nor the matmul FLOPs of its
            // batch at the reference matmul rate: the roofline is the slower of the two.
            let streamSeconds = Double(cost.weightBytesPerStep) / (bandwidth * 1e9)
            let computeSeconds = blas.map { cost.decodeFlops(batch: batch) / ($0 * 1e9) } ?? 0
            let decodeRoof = Double(batch) / max(streamSeconds, computeSeconds)
            rows.append(BenchRow(
                batch: batch, prefillTokensPerSecond: prefillTokens / timing.prefillSeconds,
                prefillGFlops: prefillFlops / timing.prefillSeconds / 1e9,
                prefillFractionOfBLAS: blas.map { prefillFlops / timing.prefillSeconds / 1e9 / $0 },
                decodeTokensPerSecond: decodeRate, decodeRooflineTokensPerSecond: decodeRoof,
                decodeFractionOfRoofline: decodeRate / decodeRoof,
                outputTokensPerSecond: Double(timing.outputTokens) / (timing.prefillSeconds + timing.decodeSeconds),
                decodeTrace: timing.trace, prefillTrace: timing.prefillTrace))
        }
        let result = BenchEngineResult(
            command: CommandLine.arguments.joined(separator: " "), gitRevision: gitRevision(), device: backend.deviceName,
            date: ISO8601DateFormatter().string(from: Date()), model: path, parameters: config.parameterCount,
            weightBytesPerDecodeStep: cost.weightBytesPerStep, promptLength: promptLength, decodeSteps: decodeSteps,
            readBandwidthGBs: bandwidth, blasGFlops: blas, llmuxMatmulGFlops: ownMatmul,
            matmulShape: [shape.m, shape.n, shape.k], matmulReference: reference, tokensPerStep: tokensPerStep, rows: rows)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
        print(result.table())
    }

    /// Timings of one batch size: `batch` sequences of `promptLength` random tokens, each
    /// generating `decodeSteps + 2` tokens. The prefill phase runs until every sequence has its
    /// first token (sequences whose prompt ended early decode in the later mixed steps); the
    /// decode phase runs until every sequence is done.
    private struct Timing {
        var prefillSeconds = 0.0
        var decodeSeconds = 0.0
        /// Tokens generated in the decode phase, and in both phases.
        var decodeTokens = 0
        var outputTokens = 0
        var trace: DecodeStepTrace?
        var prefillTrace: DecodeStepTrace?
    }

    private func measure(runner: ModelRunner, vocabulary: Int, batch: Int, promptLength: Int, steps decodeSteps: Int,
                         timer: GPUStepTimer? = nil, cuda: CUDABackend? = nil) throws -> Timing {
        let id = ModelID("bench")
        let engine = EngineCore(executor: runner, tokenizers: [:],
                                limits: SchedulerLimits(maxTokensPerStep: max(tokensPerStep, batch),
                                                        maxSequencesPerStep: max(64, batch)))
        var generator = SplitMix64(seed: 42)
        for _ in 0..<batch {
            let prompt = (0..<promptLength).map { _ in TokenID(generator.next() % UInt64(vocabulary)) }
            try engine.add(GenerationRequest(model: id, promptTokens: prompt,
                                             parameters: SamplingParameters(maxTokens: decodeSteps + 2, stopAtEOS: false)))
        }
        var timing = Timing()
        var started = Set<SequenceID>()
        /// Runs one step (or the final flush) and counts its tokens; the first token of each
        /// sequence marks it started.
        func run(_ step: () -> [SequenceEvent]) throws -> Int {
            var tokens = 0
            for event in step() {
                if let message = event.errorMessage { throw CommandFailure(message) }
                if event.token != nil {
                    tokens += 1
                    started.insert(event.sequenceID)
                }
            }
            return tokens
        }
        // LLMUX_PROFILE_PREFILL=1: the profiler's range covers the prefill steps only (for ncu).
        let profiledPrefill = ProcessInfo.processInfo.environment["LLMUX_PROFILE_PREFILL"] == "1" ? cuda : nil
        try profiledPrefill?.setProfilerRange(active: true)
        var prefillTrace = timer.map { _ in DecodeStepTrace(phase: "prefill") }
        let prefillPhasesBefore = engine.phaseTimes
        let planningBefore = cuda?.matmulPlanning
        let prefillStart = Date()
        while started.count < batch {
            let stepStart = Date()
            try timer?.begin()
            timing.outputTokens += try run(engine.step)
            try timer?.mark()
            prefillTrace?.wallMilliseconds.append(Date().timeIntervalSince(stepStart) * 1000)
        }
        timing.prefillSeconds = Date().timeIntervalSince(prefillStart)
        try profiledPrefill?.setProfilerRange(active: false)
        if let timer { prefillTrace?.gpuMilliseconds = try timer.collect() }
        let prefillSteps = prefillTrace?.wallMilliseconds.count ?? 1
        prefillTrace?.record(phases: engine.phaseTimes, since: prefillPhasesBefore, steps: prefillSteps)
        if let before = planningBefore, let after = cuda?.matmulPlanning {
            prefillTrace?.matmulPlans = after.plans - before.plans
            prefillTrace?.matmulPlanningMilliseconds = (after.seconds - before.seconds) * 1000
        }
        var trace = timer.map { _ in DecodeStepTrace(phase: "decode") }
        // LLMUX_PROFILE_DECODE=1: the profiler's range covers the decode steps only (for ncu).
        let profiled = ProcessInfo.processInfo.environment["LLMUX_PROFILE_DECODE"] == "1" ? cuda : nil
        try profiled?.setProfilerRange(active: true)
        defer { try? profiled?.setProfilerRange(active: false) }
        let phasesBefore = engine.phaseTimes
        let decodeStart = Date()
        var steps = 0
        while engine.hasWork {
            let stepStart = Date()
            try timer?.begin()
            timing.decodeTokens += try run(engine.step)
            try timer?.mark()
            trace?.wallMilliseconds.append(Date().timeIntervalSince(stepStart) * 1000)
            steps += 1
            guard steps <= 4 * (decodeSteps + 2) else { throw CommandFailure("the decode phase made no progress") }
        }
        timing.decodeSeconds = Date().timeIntervalSince(decodeStart)
        timing.outputTokens += timing.decodeTokens
        if let timer { trace?.gpuMilliseconds = try timer.collect() }
        trace?.record(phases: engine.phaseTimes, since: phasesBefore, steps: steps)
        timing.trace = trace
        timing.prefillTrace = prefillTrace
        return timing
    }

    private func presetPath(_ name: String) throws -> String {
        guard let preset = ModelPreset.all[name] else { throw ValidationError("unknown preset \(name)") }
        let base = cacheDirectory()
        let directory = base.appendingPathComponent("bench-\(name)-bf16")
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) {
            report("writing the \(name) preset to \(directory.path) …")
            try ModelMaker.write(MakeModelOptions(config: preset.config, dtype: .bf16, seed: 7, weightScale: 0.02), to: directory, progress: nil)
        }
        return directory.path
    }
}

/// The short git revision, from `LLMUX_GIT_REV` or `git rev-parse`.
func gitRevision() -> String {
    if let revision = ProcessInfo.processInfo.environment["LLMUX_GIT_REV"] { return revision }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "rev-parse", "--short", "HEAD"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return "unknown" }
    process.waitUntilExit()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return process.terminationStatus == 0 ? text.trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
}

import Foundation
import Engine
import Models

/// Weight bytes and FLOPs of a decoder, for rooflines.
struct ModelCost {
    /// Bytes of every matrix read once per decode step (all layers plus the output head), in the
    /// stored dtype, which is what the kernels stream.
    private(set) var weightBytesPerStep: Int
    /// Matrix parameters of the layers (excluding the embedding and the head).
    let layerMatrixParameters: Int
    let config: ModelConfig

    init(checkpoint: Checkpoint) {
        let config = checkpoint.config
        self.config = config
        let queryWidth = config.headCount * config.headDim
        let kvWidth = config.kvHeadCount * config.headDim
        let perLayer = config.hiddenSize * (2 * queryWidth + 2 * kvWidth) + 3 * config.hiddenSize * config.intermediateSize
        layerMatrixParameters = perLayer * config.layerCount
        let bytesPerElement = (try? checkpoint.weight("model.norm.weight", shape: [config.hiddenSize]).dtype.byteSize) ?? 2
        weightBytesPerStep = (layerMatrixParameters + config.vocabSize * config.hiddenSize) * bytesPerElement
    }

    /// Counts the weights at `bytes` per element (a backend that converts them at load).
    mutating func useBytesPerElement(_ bytes: Int) {
        weightBytesPerStep = (layerMatrixParameters + config.vocabSize * config.hiddenSize) * bytes
    }

    /// Matmul FLOPs of one decode step of `batch` sequences (layers and head; attention over a
    /// short context is negligible beside them).
    func decodeFlops(batch: Int) -> Double {
        2 * Double(layerMatrixParameters + config.vocabSize * config.hiddenSize) * Double(batch)
    }

    /// Matmul and attention FLOPs of prefilling `batch` prompts (the head runs on the last token only).
    func prefillFlops(batch: Int, promptLength: Int) -> Double {
        let tokens = Double(batch * promptLength)
        let matrices = 2 * Double(layerMatrixParameters) * tokens + 2 * Double(config.vocabSize * config.hiddenSize) * Double(batch)
        // Causal attention: QK^T and PV over on average half the prompt, per head and layer.
        let attention = 4 * Double(config.layerCount * config.headCount * config.headDim) * Double(batch)
            * Double(promptLength) * Double(promptLength + 1) / 2
        return matrices + attention
    }
}

/// numpy's BLAS fp32 matmul rate on the same shape, the prefill roofline reference.
enum BLASReference {
    static func measure(m: Int, n: Int, k: Int, threads: Int?) -> Double? {
        let script = """
            import numpy as np, time
            x = np.random.rand(\(m), \(k)).astype(np.float32); w = np.random.rand(\(n), \(k)).astype(np.float32)
            x @ w.T
            best = 1e9
            for _ in range(5):
                t = time.perf_counter(); x @ w.T; best = min(best, time.perf_counter() - t)
            print(2 * \(m) * \(n) * \(k) / best / 1e9)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        var environment = ProcessInfo.processInfo.environment
        let count = String(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        for key in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] { environment[key] = count }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        process.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return process.terminationStatus == 0 ? Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) : nil
    }
}

/// One batch size's figures.
struct BenchRow: Codable {
    let batch: Int
    let prefillTokensPerSecond: Double
    let prefillGFlops: Double
    let prefillFractionOfBLAS: Double?
    let decodeTokensPerSecond: Double
    let decodeRooflineTokensPerSecond: Double
    let decodeFractionOfRoofline: Double
    /// Output tokens (the first from prefill, then one per decode step) over prefill and decode time.
    let outputTokensPerSecond: Double
    /// Per decode step, with `--trace`.
    let decodeTrace: DecodeStepTrace?
    /// Per prefill (mixed) step, with `--trace`.
    var prefillTrace: DecodeStepTrace? = nil
}

/// Host wall time and GPU time of each decode (or prefill) step (`llmux bench engine --trace`).
struct DecodeStepTrace: Codable {
    /// "decode" or "prefill".
    var phase = "decode"
    var wallMilliseconds: [Double] = []
    var gpuMilliseconds: [Double] = []
    /// Mean host milliseconds per step in the engine's phases.
    var schedulePerStepMilliseconds = 0.0
    var executePerStepMilliseconds = 0.0
    var postprocessPerStepMilliseconds = 0.0
    /// cuBLASLt plans made and their host milliseconds during these steps.
    var matmulPlans: Int? = nil
    var matmulPlanningMilliseconds: Double? = nil

    /// Fills the mean phase times per step from the engine's totals before and after.
    mutating func record(phases: StepPhaseTimes, since before: StepPhaseTimes, steps: Int) {
        func perStep(_ after: Duration, _ before: Duration) -> Double {
            let spent = (after - before).components
            return (Double(spent.seconds) * 1000 + Double(spent.attoseconds) * 1e-15) / Double(max(1, steps))
        }
        schedulePerStepMilliseconds = perStep(phases.schedule, before.schedule)
        executePerStepMilliseconds = perStep(phases.execute, before.execute)
        postprocessPerStepMilliseconds = perStep(phases.postprocess, before.postprocess)
    }

    /// One line: medians, the GPU's busy share, and the host gap per step.
    var summary: String {
        func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
        let wall = median(wallMilliseconds), gpu = median(gpuMilliseconds)
        let busy = wallMilliseconds.reduce(0, +) > 0 ? gpuMilliseconds.reduce(0, +) / wallMilliseconds.reduce(0, +) : 0
        var line = String(format: "%@ step median: host %.3f ms, GPU from first work %.3f ms, host before it %.3f ms; GPU span %.1f%% of the %@ time; "
                          + "mean per step: schedule %.3f ms, execute %.3f ms, postprocess %.3f ms",
                          phase, wall, gpu, wall - gpu, busy * 100, phase, schedulePerStepMilliseconds, executePerStepMilliseconds,
                          postprocessPerStepMilliseconds)
        if let matmulPlans, let matmulPlanningMilliseconds {
            line += String(format: "; %d cuBLASLt plans made in %.1f ms", matmulPlans, matmulPlanningMilliseconds)
        }
        return line
    }
}

/// The whole run, as written to `--json`.
struct BenchEngineResult: Codable {
    let command: String
    let gitRevision: String
    let device: String
    let date: String
    let model: String
    let parameters: Int
    let weightBytesPerDecodeStep: Int
    let promptLength: Int
    let decodeSteps: Int
    let readBandwidthGBs: Double
    let blasGFlops: Double?
    let llmuxMatmulGFlops: Double
    let matmulShape: [Int]
    var matmulReference: String? = nil
    /// Token budget of one engine step (nil in results written before it was recorded: 2,048).
    var tokensPerStep: Int? = nil
    let rows: [BenchRow]

    func table() -> String {
        var lines = [
            "device \(device), model \(parameters / 1_000_000)M parameters, \(weightBytesPerDecodeStep / 1_000_000) MB of weights per decode step",
            matmulReference == "cuBLASLt"
                ? String(format: "copy bandwidth %.1f GB/s (read+write); cuBLASLt bf16 %@: %.1f GFLOP/s, 8192^3: %.1f GFLOP/s",
                         readBandwidthGBs, matmulShape.map(String.init).joined(separator: "x"), blasGFlops ?? 0, llmuxMatmulGFlops)
                : String(format: "read bandwidth %.1f GB/s; matmul %@: BLAS %@ GFLOP/s, LLMux %.1f GFLOP/s",
                         readBandwidthGBs, matmulShape.map(String.init).joined(separator: "x"),
                         blasGFlops.map { String(format: "%.1f", $0) } ?? "n/a", llmuxMatmulGFlops),
            "steps of up to \(tokensPerStep ?? 2048) tokens",
            "batch | prefill tok/s | prefill GFLOP/s | of \(matmulReference ?? "BLAS") | decode tok/s | roofline tok/s | of roofline | output tok/s",
        ]
        for row in rows {
            lines.append(String(format: "%5d | %13.1f | %15.1f | %7@ | %12.1f | %14.1f | %10.0f%% | %12.1f",
                                row.batch, row.prefillTokensPerSecond, row.prefillGFlops,
                                row.prefillFractionOfBLAS.map { String(format: "%.0f%%", $0 * 100) } ?? "n/a",
                                row.decodeTokensPerSecond, row.decodeRooflineTokensPerSecond, row.decodeFractionOfRoofline * 100,
                                row.outputTokensPerSecond))
            if let trace = row.prefillTrace { lines.append("  batch \(row.batch) \(trace.summary)") }
            if let trace = row.decodeTrace { lines.append("  batch \(row.batch) \(trace.summary)") }
        }
        return lines.joined(separator: "\n")
    }
}

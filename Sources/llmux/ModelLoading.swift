import Compute
import Foundation
import LLMuxCore
import Models
import Tokenization

/// Writes progress lines to standard error.
func report(_ message: String) {
    let elapsed = Date().timeIntervalSince(processStart)
    FileHandle.standardError.write(Data((String(format: "[%6.1fs] ", elapsed) + message + "\n").utf8))
}

/// When the process started (progress lines carry the seconds since).
let processStart = Date()

/// Opens a checkpoint directory with a readable error, and reads it into memory with a
/// progress line for checkpoints over 256 MiB.
func openCheckpoint(_ path: String, quiet: Bool = false) throws -> Checkpoint {
    let checkpoint = try Checkpoint(directory: URL(fileURLWithPath: path))
    if checkpoint.totalBytes > 256 << 20 && !quiet {
        var lastPercent = -1
        checkpoint.prefault { progress in
            let percent = progress.bytesTotal > 0 ? progress.bytesDone * 100 / progress.bytesTotal : 100
            if percent / 10 != lastPercent / 10 {
                lastPercent = percent
                report(String(format: "loading %@: %3d%% (%.1f of %.1f GiB)", path, percent,
                              Double(progress.bytesDone) / 1.0737e9, Double(progress.bytesTotal) / 1.0737e9))
            }
        }
    }
    return checkpoint
}

/// Reports `Checkpoint.roundingNote` for each checkpoint that `backend` would round.
func noteWeightRounding(_ checkpoints: [(ModelID, Checkpoint)], backend: any ComputeBackend) {
    for (model, checkpoint) in checkpoints {
        if let note = checkpoint.roundingNote(model: model, computedIn: backend.activationDType, deviceName: backend.deviceName) { report(note) }
    }
}

/// The tokenizer of a checkpoint directory, or nil when it has no tokenizer.json.
func openTokenizer(_ path: String) throws -> Tokenizer? {
    let directory = URL(fileURLWithPath: path)
    guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) else { return nil }
    return try Tokenizer(directory: directory)
}

/// Where generated models are kept between runs: `$LLMUX_CACHE`, else `llmux-cache` in the
/// temporary directory.
func cacheDirectory() -> URL {
    ProcessInfo.processInfo.environment["LLMUX_CACHE"].map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.temporaryDirectory.appendingPathComponent("llmux-cache")
}

/// The built-in demo models: "demo", the small Llama trained on Python's standard library by
/// scripts/train/train_demo_model.py and committed at `Models/demo-python` (see
/// `trainedDemoModelPath()`), then "demo-qwen2" and "demo-mistral", small random-weight
/// checkpoints written once into the cache folder (`$LLMUX_CACHE`, else the temporary directory).
/// Where the trained model cannot be found, "demo" is a random-weight Llama and a warning says so.
func demoModels() throws -> [(name: String, path: String)] {
    let trained = trainedDemoModelPath()
    if trained == nil { report("warning: the trained demo model is missing (set LLMUX_DEMO_MODEL); \"demo\" has random weights") }
    var shapes: [(name: String, preset: String, layers: Int)] = [("demo-qwen2", "tiny-qwen2", 4), ("demo-mistral", "tiny-mistral", 3)]
    if trained == nil { shapes.insert(("demo", "tiny-llama", 2), at: 0) }
    let random = try shapes.map { ($0.name, try randomDemoModel(name: $0.name, preset: $0.preset, layers: $0.layers)) }
    return (trained.map { [("demo", $0)] } ?? []) + random
}

/// The trained demo model's directory: `$LLMUX_DEMO_MODEL` when set, else `Models/demo-python` in
/// the source tree this binary was built from (located through this file's path at build time, so
/// `swift run` and the built binary find it wherever they are started). Nil when it has no config.json.
func trainedDemoModelPath() -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = ProcessInfo.processInfo.environment["LLMUX_DEMO_MODEL"] ?? root.appendingPathComponent("Models/demo-python").path
    return FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json")) ? path : nil
}

/// A random-weight demo checkpoint of `preset` with `layers` layers, written once into the cache folder.
private func randomDemoModel(name: String, preset: String, layers: Int) throws -> String {
    let base = cacheDirectory()
    let directory = base.appendingPathComponent("\(name)-v2")
    if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) {
        guard var config = ModelPreset.all[preset]?.config else { throw LLMuxError.engine("the \(preset) preset is missing") }
        config.layerCount = layers
        // Write next to the target and rename, so a concurrent or interrupted start never sees half a model.
        let staging = base.appendingPathComponent("\(name)-staging-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: staging)
        try ModelMaker.write(MakeModelOptions(config: config, dtype: .bf16, seed: 1, weightScale: 0.5), to: staging, progress: nil)
        if !FileManager.default.fileExists(atPath: directory.path) {
            try? FileManager.default.moveItem(at: staging, to: directory)
        }
        try? FileManager.default.removeItem(at: staging)
    }
    return directory.path
}

/// The "demo" model's directory (the trained one where it is found).
func demoModelPath() throws -> String { try demoModels()[0].path }

/// KV-cache bytes that hold `tokens` tokens of `config` on the CPU (fp32), plus a page of slack.
func kvBytes(forTokens tokens: Int, config: ModelConfig) -> Int {
    let perToken = 2 * config.layerCount * config.kvHeadCount * config.headDim * 4
    return (tokens + 32) * perToken
}

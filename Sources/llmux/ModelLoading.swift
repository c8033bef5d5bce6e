import Compute
import Foundation
import LLMuxCore
import Models
import Tokenization

/// Writes progress lines to standard error.
func report(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

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

/// The built-in demo models: small random-weight checkpoints of the three architectures, in
/// different sizes, written once into the cache folder (`$LLMUX_CACHE`, else the temporary
/// directory). "demo" is the Llama one, which `generate --demo` uses.
func demoModels() throws -> [(name: String, path: String)] {
    let base = cacheDirectory()
    let shapes: [(name: String, preset: String, layers: Int)] = [
        ("demo", "tiny-llama", 2), ("demo-qwen2", "tiny-qwen2", 4), ("demo-mistral", "tiny-mistral", 3),
    ]
    return try shapes.map { shape in
        let directory = base.appendingPathComponent("\(shape.name)-v2")
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) {
            guard var config = ModelPreset.all[shape.preset]?.config else { throw LLMuxError.engine("the \(shape.preset) preset is missing") }
            config.layerCount = shape.layers
            // Write next to the target and rename, so a concurrent or interrupted start never sees half a model.
            let staging = base.appendingPathComponent("\(shape.name)-staging-\(ProcessInfo.processInfo.processIdentifier)")
            try? FileManager.default.removeItem(at: staging)
            try ModelMaker.write(MakeModelOptions(config: config, dtype: .bf16, seed: 1, weightScale: 0.5), to: staging, progress: nil)
            if !FileManager.default.fileExists(atPath: directory.path) {
                try? FileManager.default.moveItem(at: staging, to: directory)
            }
            try? FileManager.default.removeItem(at: staging)
        }
        return (shape.name, directory.path)
    }
}

/// The Llama demo model's directory.
func demoModelPath() throws -> String { try demoModels()[0].path }

/// KV-cache bytes that hold `tokens` tokens of `config` on the CPU (fp32), plus a page of slack.
func kvBytes(forTokens tokens: Int, config: ModelConfig) -> Int {
    let perToken = 2 * config.layerCount * config.kvHeadCount * config.headDim * 4
    return (tokens + 32) * perToken
}

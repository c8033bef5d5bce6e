import ArgumentParser
import Compute
import Foundation
import LLMuxCore
import Models

/// `llmux perplexity`: the perplexity of a model on a text or a list of token ids.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Compute a model's perplexity on a text or on token ids.",
        discussion: """
            The ids are cut into consecutive windows of --context tokens (the last may be shorter); every
            token after the first of a window is scored given the window before it; the perplexity is
            exp(mean NLL) over all scored tokens, as scripts/train/train_demo_model.py computes it with
            PyTorch. A --text-file is tokenized as a completion prompt is (special tokens added). With
            --json it prints {"perplexity", "mean_nll", "scored_tokens", "windows", "context", "device"}.
            """)

    @Option(help: "Hugging Face checkpoint directory.")
    var model: String?
    @Flag(help: "Use the built-in demo model (Models/demo-python) instead of --model.")
    var demo = false
    @Option(help: "A UTF-8 text file, tokenized with the checkpoint's tokenizer.")
    var textFile: String?
    @Option(help: "A file of token ids separated by commas or white space (a JSON array works).")
    var tokenIdsFile: String?
    @Option(help: "Window length in tokens (default: 512, or the model's context when smaller).")
    var context: Int?
    @Option(help: "CPU threads for the kernels (default: all cores).")
    var threads: Int?
    @Option(help: "Device: cpu or cuda[:N].")
    var device: DeviceChoice = .cpu
    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if (model == nil) == !demo { throw ValidationError("give exactly one of --model PATH or --demo") }
        if (textFile == nil) == (tokenIdsFile == nil) { throw ValidationError("give exactly one of --text-file or --token-ids-file") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
    }

    func run() throws {
        do {
            try evaluate(path: demo ? try demoModelPath() : model!)
        } catch let error as LLMuxError {
            throw CommandFailure(error.description)
        } catch let error as CUDAError {
            throw CommandFailure(error.description)
        }
    }

    private func evaluate(path: String) throws {
        let checkpoint = try openCheckpoint(path, quiet: json)
        let tokens = try tokenIDs(path: path)
        let window = min(context ?? 512, checkpoint.config.maxPositionEmbeddings)
        let modelID = ModelID("model")
        let runner = try ModelRunner(checkpoints: [(modelID, checkpoint)], backend: device.makeBackend(threads: threads, quiet: json),
                                     kvCacheBytes: kvBytes(forTokens: window, config: checkpoint.config) * 2)
        let result = try PerplexityResult.evaluate(runner: runner, model: modelID, tokens: tokens, context: window) { done, total in
            if !json { report("window \(done) of \(total)") }
        }
        if json {
            let object: [String: Any] = ["perplexity": result.perplexity, "mean_nll": result.meanNLL, "scored_tokens": result.scoredTokens,
                                         "windows": result.windows, "context": result.context, "device": device.description]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "perplexity %.4f (mean NLL %.5f over %d tokens in %d windows of %d, %@)", result.perplexity,
                         result.meanNLL, result.scoredTokens, result.windows, result.context, device.description))
        }
    }

    private func tokenIDs(path: String) throws -> [TokenID] {
        if let tokenIdsFile {
            let text = try String(contentsOfFile: tokenIdsFile, encoding: .utf8)
            let parts = text.split { ",[] \n\t\r".contains($0) }
            let ids = parts.compactMap { TokenID($0) }
            guard ids.count == parts.count else { throw ValidationError("\(tokenIdsFile) must hold integers separated by commas or spaces") }
            return ids
        }
        guard let tokenizer = try openTokenizer(path) else { throw ValidationError("\(path) has no tokenizer.json; use --token-ids-file") }
        return tokenizer.encode(try String(contentsOfFile: textFile!, encoding: .utf8), addSpecialTokens: true)
    }
}

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
            The ids are cut into consecutive windows of --context tokens (the last may be shorter); every \
            token after the first of a window is scored given the window before it; the perplexity is \
            exp(mean NLL) over all scored tokens, as scripts/train/train_demo_model.py computes it with \
            PyTorch. A --text-file is tokenized as a completion prompt is (special tokens added). With \
            --json it prints {"perplexity", "mean_nll", "scored_tokens", "windows", "context", "device"}.
            """)

    @OptionGroup var target: ModelChoice
    @Option(help: "A UTF-8 text file, tokenized with the checkpoint's tokenizer.")
    var textFile: String?
    @Option(help: "A file of token ids separated by commas or white space (a JSON array works).")
    var tokenIdsFile: String?
    @Option(help: "Window length in tokens (default: 512, or the model's context when smaller).")
    var context: Int?
    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if (textFile == nil) == (tokenIdsFile == nil) { throw ValidationError("give exactly one of --text-file or --token-ids-file") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
    }

    func run() throws {
        do {
            try evaluate(path: target.path())
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
        let backend = try target.makeBackend(quiet: json)
        if !json { noteWeightRounding([(modelID, checkpoint)], backend: backend) }
        let runner = try ModelRunner(checkpoints: [(modelID, checkpoint)], backend: backend,
                                     kvCacheBytes: kvBytes(forTokens: window, config: checkpoint.config) * 2)
        let result = try PerplexityResult.evaluate(runner: runner, model: modelID, tokens: tokens, context: window) { done, total in
            if !json { report("window \(done) of \(total)") }
        }
        if json {
            let object: [String: Any] = ["perplexity": result.perplexity, "mean_nll": result.meanNLL, "scored_tokens": result.scoredTokens,
                                         "windows": result.windows, "context": result.context, "device": target.device.description]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "perplexity %.4f (mean NLL %.5f over %d tokens in %d windows of %d, %@)", result.perplexity,
                         result.meanNLL, result.scoredTokens, result.windows, result.context, target.device.description))
        }
    }

    private func tokenIDs(path: String) throws -> [TokenID] {
        if let tokenIdsFile {
            let text = try readText(tokenIdsFile)
            let parts = text.split { ",[] \n\t\r".contains($0) }
            let ids = parts.compactMap { TokenID($0) }
            guard ids.count == parts.count else { throw ValidationError("\(tokenIdsFile) must hold integers separated by commas or spaces") }
            return ids
        }
        guard let tokenizer = try openTokenizer(path) else { throw ValidationError("\(path) has no tokenizer.json; use --token-ids-file") }
        return tokenizer.encode(try readText(textFile!), addSpecialTokens: true)
    }

    /// A UTF-8 file's text, or an error that names the file.
    private func readText(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CommandFailure("cannot read \(path) as UTF-8 text")
        }
        return text
    }
}

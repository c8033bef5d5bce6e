import ArgumentParser
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Tokenization

/// `llmux generate`: one prompt through the engine on the CPU, printed as text or JSON.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a completion for one prompt.",
        discussion: """
            With --json it prints {"prompt_token_ids", "token_ids", "text", "logprobs", "finish_reason"}. \
            Greedy unless --temperature is above 0. Stops at the model's EOS tokens (generation_config.json), \
            --stop strings, or --max-tokens.
            """)

    @OptionGroup var target: ModelChoice
    @Option(help: "Prompt text (tokenized with the checkpoint's tokenizer, special tokens added).")
    var prompt: String?
    @Option(help: "Prompt as comma-separated token ids, e.g. 1,2,3 (no tokenizer needed).")
    var promptIds: String?
    @Option(help: "Maximum number of tokens to generate.")
    var maxTokens = 32
    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0
    @Option(help: "Nucleus sampling mass in (0, 1].")
    var topP: Float = 1
    @Option(help: "Keep only the K most likely tokens (0: off).")
    var topK = 0
    @Option(help: "Drop tokens below this fraction of the top probability (0: off).")
    var minP: Float = 0
    @Option(help: "Random seed; the same seed and prompt give the same tokens.")
    var seed: UInt64?
    @Option(help: "Repetition penalty over prompt and output (1: off).")
    var repetitionPenalty: Float = 1
    @Option(help: "Presence penalty in [-2, 2].")
    var presencePenalty: Float = 0
    @Option(help: "Frequency penalty in [-2, 2].")
    var frequencyPenalty: Float = 0
    @Option(help: "Return the top-K log-probabilities of every generated token.")
    var logprobs: Int?
    @Option(help: "Stop when this text appears (repeatable); it is not included in the output.")
    var stop: [String] = []
    @Flag(help: "Keep generating past the model's EOS tokens.")
    var ignoreEos = false
    @Option(help: "KV-cache memory, e.g. 512MiB (default: enough for this prompt).")
    var kvCacheMemory: ByteSize?
    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt TEXT or --prompt-ids 1,2,3") }
    }

    func run() throws {
        let path = try target.path()
        do {
            try generate(path: path)
        } catch let error as LLMuxError {
            throw CommandFailure(error.description)
        } catch let error as CUDAError {
            throw CommandFailure(error.description)
        }
    }

    private func generate(path: String) throws {
        let checkpoint = try openCheckpoint(path, quiet: json)
        let tokenizer = try openTokenizer(path)
        let promptTokens = try promptTokenIDs(tokenizer: tokenizer)
        let parameters = SamplingParameters(
            temperature: temperature, topP: topP, topK: topK, minP: minP, seed: seed,
            repetitionPenalty: repetitionPenalty, presencePenalty: presencePenalty, frequencyPenalty: frequencyPenalty,
            logprobs: logprobs, maxTokens: maxTokens, stopStrings: stop, stopAtEOS: !ignoreEos)
        let modelID = ModelID("model")
        let kvBytes = kvCacheMemory?.bytes ?? kvBytes(forTokens: promptTokens.count + maxTokens, config: checkpoint.config)
        let backend = try target.makeBackend(quiet: json)
        if !json { noteWeightRounding([(modelID, checkpoint)], backend: backend) }
        let runner = try ModelRunner(checkpoints: [(modelID, checkpoint)], backend: backend, kvCacheBytes: kvBytes)
        let engine = EngineCore(executor: runner, tokenizers: tokenizer.map { [modelID: $0] } ?? [:])
        try engine.add(GenerationRequest(model: modelID, promptTokens: promptTokens, parameters: parameters))

        var output = GenerationOutput(promptTokenIDs: promptTokens)
        while engine.hasWork {
            for event in engine.step() {
                if let token = event.token { output.append(token) }
                output.text += event.textDelta
                if !json { FileHandle.standardOutput.write(Data(event.textDelta.utf8)) }
                if let reason = event.finishReason {
                    output.finishReason = reason
                    if let message = event.errorMessage { throw LLMuxError.engine(message) }
                }
            }
        }
        if json { print(try output.jsonString()) } else { print("") }
    }

    private func promptTokenIDs(tokenizer: Tokenizer?) throws -> [TokenID] {
        if let promptIds {
            let parts = promptIds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let ids = parts.compactMap { TokenID($0) }
            guard ids.count == parts.count, !ids.isEmpty else { throw ValidationError("--prompt-ids must be comma-separated integers") }
            return ids
        }
        guard let tokenizer else { throw ValidationError("\(target.model ?? "the demo model") has no tokenizer.json; use --prompt-ids") }
        return tokenizer.encode(prompt!, addSpecialTokens: true)
    }
}

/// The `--json` output of `llmux generate`.
struct GenerationOutput: Encodable {
    struct Logprob: Encodable {
        let tokenID: TokenID
        let logprob: Float
        let top: [TopEntry]
        enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob, top }
    }
    struct TopEntry: Encodable {
        let tokenID: TokenID
        let logprob: Float
        enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob }
    }

    let promptTokenIDs: [TokenID]
    var tokenIDs: [TokenID] = []
    var text = ""
    var logprobs: [Logprob] = []
    var finishReason: FinishReason?

    enum CodingKeys: String, CodingKey {
        case promptTokenIDs = "prompt_token_ids", tokenIDs = "token_ids", text, logprobs, finishReason = "finish_reason"
    }

    mutating func append(_ token: SampledToken) {
        tokenIDs.append(token.tokenID)
        logprobs.append(Logprob(tokenID: token.tokenID, logprob: token.logprob,
                                top: token.top.map { TopEntry(tokenID: $0.tokenID, logprob: $0.logprob) }))
    }

    func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

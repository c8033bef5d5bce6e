import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Testing
import Tokenization

/// Streamed text against the tokenizer's own decoding, and stop strings.
@Suite struct StreamingTextTests {
    static let tokenizer: Tokenizer = {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TokenizationTests/Fixtures/llama3")
        return try! Tokenizer(directory: directory)
    }()

    func generate(stop: [String] = [], maxTokens: Int = 40) throws -> (text: String, deltas: [String], tokens: [TokenID], finish: FinishReason?) {
        let (checkpoint, golden) = try Golden.load("llama-bf16")
        let runner = try ModelRunner(checkpoints: [(EngineHarness.model, checkpoint)], backend: CPUBackend(), kvCacheBytes: 4 << 20)
        let engine = EngineCore(executor: runner, tokenizers: [EngineHarness.model: Self.tokenizer])
        // The fixture model has 512 tokens, fewer than the tokenizer: prompt with golden ids.
        let prompt = golden.cases[2].promptTokenIDs
        try engine.add(GenerationRequest(model: EngineHarness.model, promptTokens: prompt,
                                         parameters: SamplingParameters(maxTokens: maxTokens, stopStrings: stop, stopAtEOS: false)))
        var deltas: [String] = []
        var tokens: [TokenID] = []
        var finish: FinishReason?
        while engine.hasWork {
            for event in engine.step() {
                deltas.append(event.textDelta)
                if let token = event.token { tokens.append(token.tokenID) }
                if let reason = event.finishReason { finish = reason }
            }
        }
        return (deltas.joined(), deltas, tokens, finish)
    }

    @Test func streamedTextEqualsDecodingAllTokens() throws {
        let run = try generate()
        #expect(run.finish == .length && run.tokens.count == 40)
        #expect(run.text == Self.tokenizer.decode(run.tokens, skipSpecialTokens: true))
        #expect(run.deltas.allSatisfy { !$0.contains("\u{FFFD}") } || run.text.contains("\u{FFFD}"))
    }

    @Test func stopStringEndsGenerationAndIsNeverStreamed() throws {
        let full = try generate().text
        let characters = Array(full)
        try #require(characters.count > 12, "need some text to cut")
        let stop = String(characters[8..<11])
        let run = try generate(stop: [stop])
        let expected = String(full[..<full.range(of: stop)!.lowerBound])
        #expect(run.finish == .stop)
        #expect(run.text == expected)
        #expect(!run.deltas.contains { $0.contains(stop) })
    }
}

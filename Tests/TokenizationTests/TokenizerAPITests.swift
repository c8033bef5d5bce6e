import Foundation
import LLMuxCore
import Testing
import Tokenization

/// Vocabulary lookups and tokenizer_config.json values.
@Suite struct TokenizerAPITests {
    @Test func llama3Config() throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        #expect(tokenizer.bosToken == "<|begin_of_text|>")
        #expect(tokenizer.eosToken == "<|eot_id|>")
        #expect(tokenizer.bosTokenID == 0)
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.chatTemplate?.contains("<|start_header_id|>") == true)
        #expect(tokenizer.isSpecial(2))
        #expect(!tokenizer.isSpecial(100))
        #expect(tokenizer.encode("hi").first == 0)
    }

    @Test func objectFormTokensInConfig() throws {
        let tokenizer = try Fixtures.tokenizer("llama2")
        #expect(tokenizer.bosToken == "<s>")
        #expect(tokenizer.eosToken == "</s>")
        #expect(tokenizer.bosTokenID == 1)
        #expect(tokenizer.eosTokenID == 2)
    }

    @Test func listChatTemplateIsNotAString() throws {
        let tokenizer = try Fixtures.tokenizer("misc")
        #expect(tokenizer.chatTemplate == nil)
        #expect(tokenizer.bosTokenID == tokenizer.tokenID(for: "[CLS]"))
    }

    @Test func tokenRoundTrip() throws {
        let tokenizer = try Fixtures.tokenizer("llama2")
        #expect(tokenizer.tokenID(for: "<0x0A>") == 13)
        #expect(tokenizer.token(for: 13) == "<0x0A>")
        #expect(tokenizer.token(for: 1) == "<s>")
        #expect(tokenizer.token(for: -1) == nil)
        #expect(tokenizer.token(for: 1_000_000) == nil)
        #expect(tokenizer.tokenID(for: "definitely not a token") == nil)
    }

    @Test func addedTokensCountInVocabularySize() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2")
        let mask = try #require(tokenizer.tokenID(for: "<mask>"))
        #expect(Int(mask) < tokenizer.vocabularySize)
        #expect(tokenizer.isSpecial(mask))
        let new = try #require(tokenizer.tokenID(for: "[NEW]"))
        #expect(!tokenizer.isSpecial(new))
    }

    @Test func missingConfigLeavesOptionalsNil() throws {
        let data = try Data(contentsOf: Fixtures.directory("gpt2").appendingPathComponent("tokenizer.json"))
        let tokenizer = try Tokenizer(tokenizerJSON: data)
        #expect(tokenizer.bosToken == nil)
        #expect(tokenizer.bosTokenID == nil)
        #expect(tokenizer.chatTemplate == nil)
    }

    @Test func encodesTenKilobytesQuickly() throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        let text = String(repeating: "The quick brown fox, 12345 jumps! café 日本語 😀\n    indent ", count: 200)
        let clock = ContinuousClock()
        #expect(text.utf8.count > 10_000)
        let elapsed = clock.measure { _ = tokenizer.encode(text) }
        print("encode of \(text.utf8.count) bytes took \(elapsed)")
        // Generous bound: this runs in debug builds on a small CI machine.
        #expect(elapsed < .seconds(2))
    }

    @Test func usableFromManyTasks() async throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        let expected = tokenizer.encode("shared between tasks")
        try await withThrowingTaskGroup(of: [TokenID].self) { group in
            for _ in 0..<8 { group.addTask { tokenizer.encode("shared between tasks") } }
            for try await ids in group { #expect(ids == expected) }
        }
    }
}

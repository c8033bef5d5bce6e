import Foundation
import LLMuxCore
import Testing
import Tokenization

/// Streaming decode: never half a character, and the pieces add up to the full decode.
@Suite struct IncrementalDetokenizerTests {
    private func stream(_ tokenizer: Tokenizer, _ ids: [TokenID], skip: Bool) -> [String] {
        var detokenizer = tokenizer.makeDetokenizer(skipSpecialTokens: skip)
        var chunks = ids.map { detokenizer.append($0) }
        chunks.append(detokenizer.finish())
        return chunks
    }

    @Test(arguments: Fixtures.names)
    func concatenationEqualsFullDecode(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        for item in try Fixtures.cases(fixture).cases {
            for skip in [false, true] {
                let chunks = stream(tokenizer, item.ids, skip: skip)
                let full = tokenizer.decode(item.ids, skipSpecialTokens: skip)
                let label = "\(fixture) skip=\(skip): \(Fixtures.show(String(item.text.prefix(60))))"
                #expect(Fixtures.difference(chunks.joined(), full) == nil, "\(label)")
                if !full.unicodeScalars.contains("\u{FFFD}") {
                    #expect(!chunks.contains { $0.unicodeScalars.contains("\u{FFFD}") }, "\(label)")
                }
            }
        }
    }

    /// An emoji absent from the training data is spelled with several byte tokens.
    @Test(arguments: ["llama2", "mistral", "llama3", "gpt2"])
    func emojiSplitAcrossByteTokensIsEmittedWhole(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        let text = "crab 🦀 and 🦑 squid"
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        if let firstByte = tokenizer.tokenID(for: "<0xF0>") {
            #expect(ids.contains(firstByte), "the emoji should go through byte_fallback")
        }
        #expect(tokenizer.encode("🦀", addSpecialTokens: false).count >= 2, "the emoji should need several tokens")
        let chunks = stream(tokenizer, ids, skip: true)
        #expect(chunks.joined() == tokenizer.decode(ids, skipSpecialTokens: true))
        #expect(chunks.contains { $0.contains("🦀") })
        #expect(chunks.contains { $0.contains("🦑") })
        #expect(!chunks.contains { $0.unicodeScalars.contains("\u{FFFD}") })
        // Most chunks are empty while bytes accumulate.
        #expect(chunks.filter(\.isEmpty).count >= 2)
    }

    @Test func incompleteCharacterIsHeldUntilFinish() throws {
        let tokenizer = try Fixtures.tokenizer("llama2")
        let first = try #require(tokenizer.tokenID(for: "<0xF0>"))
        let second = try #require(tokenizer.tokenID(for: "<0x9F>"))
        var detokenizer = tokenizer.makeDetokenizer()
        #expect(detokenizer.append(first) == "")
        #expect(detokenizer.append(second) == "")
        // The stream ended inside a character: finish reports it as a full decode would.
        #expect(detokenizer.finish() == tokenizer.decode([first, second], skipSpecialTokens: true))
    }

    @Test func specialTokensSkippedByDefault() throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        let ids = tokenizer.encode("Hello<|eot_id|>")
        #expect(stream(tokenizer, ids, skip: true).joined() == "Hello")
        #expect(stream(tokenizer, ids, skip: false).joined() == "<|begin_of_text|>Hello<|eot_id|>")
    }

    @Test func zwjSequenceGrowsWithoutRepeating() throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        let text = "family 👨‍👩‍👧‍👦 done"
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        let chunks = stream(tokenizer, ids, skip: true)
        #expect(chunks.joined() == text)
    }
}

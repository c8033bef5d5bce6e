import Foundation
import LLMuxCore
import Testing
import Tokenization

/// Every fixture case must match the Python `tokenizers` library exactly.
@Suite struct FixtureParityTests {
    @Test(arguments: Fixtures.names)
    func encodeWithSpecialTokens(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        for item in try Fixtures.cases(fixture).cases {
            let ids = tokenizer.encode(item.text)
            #expect(ids == item.ids, "\(fixture): \(Fixtures.show(String(item.text.prefix(80))))")
        }
    }

    @Test(arguments: Fixtures.names)
    func encodeWithoutSpecialTokens(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        for item in try Fixtures.cases(fixture).cases {
            let ids = tokenizer.encode(item.text, addSpecialTokens: false)
            #expect(ids == item.ids_no_special, "\(fixture): \(Fixtures.show(String(item.text.prefix(80))))")
        }
    }

    @Test(arguments: Fixtures.names)
    func decode(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        for item in try Fixtures.cases(fixture).cases {
            let label = "\(fixture): \(Fixtures.show(String(item.text.prefix(80))))"
            let full = Fixtures.difference(tokenizer.decode(item.ids), item.decoded)
            #expect(full == nil, "\(label)")
            let skip = Fixtures.difference(tokenizer.decode(item.ids, skipSpecialTokens: true), item.decoded_skip)
            #expect(skip == nil, "\(label)")
            // Half the ids often end inside a character: U+FFFD handling must match too.
            let prefix = Fixtures.difference(tokenizer.decode(item.prefix_ids), item.prefix_decoded)
            #expect(prefix == nil, "\(label)")
        }
    }

    @Test(arguments: Fixtures.names)
    func vocabularySize(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        #expect(tokenizer.vocabularySize == (try Fixtures.cases(fixture).vocab_size))
    }
}

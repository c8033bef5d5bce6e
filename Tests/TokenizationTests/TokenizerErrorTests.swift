import Foundation
import Testing
import Tokenization

/// Malformed or unsupported tokenizer.json files fail with messages naming the file and key.
@Suite struct TokenizerErrorTests {
    private func message(_ json: String, config: String? = nil) -> String? {
        do {
            _ = try Tokenizer(tokenizerJSON: Data(json.utf8), configJSON: config.map { Data($0.utf8) })
            return nil
        } catch let error as TokenizerError {
            return error.description
        } catch {
            return "unexpected error type: \(error)"
        }
    }

    private let model = #"{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}"#

    @Test func badJSON() {
        #expect(message("{not json")?.hasPrefix("tokenizer.json: not valid JSON") == true)
        #expect(message("[1, 2]")?.hasPrefix("tokenizer.json: not valid JSON") == true)
    }

    @Test func missingModel() {
        #expect(message(#"{"version":"1.0"}"#) == "tokenizer.json: missing required key 'model'")
    }

    @Test func unsupportedModelType() {
        #expect(message(#"{"model":{"type":"WordPiece","vocab":{}}}"#)
            == "tokenizer.json: model.type 'WordPiece' is not supported")
        #expect(message(#"{"model":{"type":"Unigram","vocab":[]}}"#)
            == "tokenizer.json: model.type 'Unigram' is not supported")
    }

    @Test func unsupportedComponents() {
        #expect(message(#"{"model":\#(model),"normalizer":{"type":"BertNormalizer"}}"#)
            == "tokenizer.json: normalizer.type 'BertNormalizer' is not supported")
        #expect(message(#"{"model":\#(model),"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"BertPreTokenizer"}]}}"#)
            == "tokenizer.json: pre_tokenizer.pretokenizers[0].type 'BertPreTokenizer' is not supported")
        #expect(message(#"{"model":\#(model),"decoder":{"type":"WordPiece"}}"#)
            == "tokenizer.json: decoder.type 'WordPiece' is not supported")
        #expect(message(#"{"model":\#(model),"post_processor":{"type":"Weird"}}"#)
            == "tokenizer.json: post_processor.type 'Weird' is not supported")
    }

    @Test func wrongTypesAndValues() {
        #expect(message(#"{"model":{"type":"BPE","vocab":{"a":"zero"},"merges":[]}}"#)
            == "tokenizer.json: model.vocab.a must be an integer")
        #expect(message(#"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a c"]}}"#)?
            .hasPrefix("tokenizer.json: model.merges[0] is invalid") == true)
        #expect(message(#"{"model":{"type":"BPE","vocab":{"a":0}}}"#)
            == "tokenizer.json: missing required key 'model.merges'")
        #expect(message(#"{"model":\#(model),"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"}}"#)?
            .hasPrefix("tokenizer.json: pre_tokenizer.pattern.Regex is invalid") == true)
    }

    @Test func badConfig() {
        #expect(message(#"{"model":\#(model)}"#, config: "nope")?.hasPrefix("tokenizer_config.json: not valid JSON") == true)
        #expect(message(#"{"model":\#(model)}"#, config: #"{"bos_token": 5}"#)
            == "tokenizer_config.json: bos_token must be a string or an object with 'content'")
    }

    @Test func missingDirectory() {
        #expect(throws: TokenizerError.self) {
            _ = try Tokenizer(directory: URL(fileURLWithPath: "/nonexistent/tokenizer/dir"))
        }
    }

    @Test func minimalTokenizerWorks() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Data(#"{"model":\#(model)}"#.utf8))
        #expect(tokenizer.encode("aab") == [0, 2])
        #expect(tokenizer.decode([0, 2]) == "a ab")
    }
}

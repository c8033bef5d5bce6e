import Foundation
import Testing
import Tokenization

/// The public surface: values, JSON input, context variables.
@Suite struct ChatTemplateAPITests {
    @Test func jsonKeepsKeyOrder() throws {
        let value = try JinjaValue(json: #"{"z": 1, "a": [true, null, 2.5, "\u00e9\n"], "m": {}}"#)
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object.keys == ["z", "a", "m"])
        #expect(object["a"] == .array([.bool(true), .none, .double(2.5), .string("é\n")]))
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: "{\"a\": }") }
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: String(repeating: "[", count: 100_000)) }
    }

    @Test func contextVariables() throws {
        let template = try ChatTemplate(source: "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ messages | length }}|{{ messages[0].role }}:{{ messages[0]['content'] }}|{{ extra.k }}")
        let out = try template.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false,
                                      bosToken: nil, eosToken: "</s>", extraContext: ["extra": ["k": "v"]])
        #expect(out == "|</s>|False|1|user:hi|v")
    }

    @Test func valuesPrintLikePython() {
        let value: JinjaValue = ["a": [1, 2.5, "it's", true], "b": .none]
        #expect(value.pythonString == #"{'a': [1, 2.5, "it's", True], 'b': None}"#)
        #expect(JinjaValue.undefined.pythonString == "")
        #expect(!JinjaValue.undefined.isTruthy && !JinjaValue.string("").isTruthy && JinjaValue.array([0]).isTruthy)
    }

    @Test func strftimeUsesInjectedClock() throws {
        var template = try ChatTemplate(source: "{{ strftime_now('%d %b %Y') }}")
        var components = DateComponents(year: 2025, month: 3, day: 4, hour: 12)
        components.timeZone = TimeZone.current
        let date = try #require(Calendar(identifier: .gregorian).date(from: components))
        template.now = { date }
        #expect(try template.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil) == "04 Mar 2025")
    }
}

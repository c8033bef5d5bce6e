import Foundation
import Testing
import LLMuxCore
import Tokenization

/// Hostile or broken templates must fail with an error, never crash or hang.
@Suite struct ChatTemplateRobustnessTests {
    private func render(_ source: String) throws -> String {
        try ChatTemplate(source: source).render(messages: [ChatMessage(role: "user", content: "hi")],
                                                addGenerationPrompt: true, bosToken: "<s>", eosToken: nil)
    }

    @Test(arguments: [
        "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
        "{{ " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + " }}",
        "{{ " + String(repeating: "not ", count: 5000) + "x }}",
        "{{ " + String(repeating: "-", count: 5000) + "1 }}",
        "{{ 1" + String(repeating: " + 1", count: 50000) + " }}",
        "{{ x" + String(repeating: ".a", count: 50000) + " }}",
        "{{ 'a'" + String(repeating: " | trim", count: 50000) + " }}",
        String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
    ])
    func deepNestingIsAnError(source: String) {
        #expect(throws: ChatTemplateError.self) { try render(source) }
    }

    @Test(arguments: [
        "{{ 'a' * 1000000000 }}",
        "{{ range(1000000000) | length }}",
        "{% for i in range(2000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{{ 9223372036854775807 + 1 }}",
        "{{ 2 ** 100 }}",
        "{{ [1] * 1000000000 }}",
        "{{ 'x'[::0] }}",
        "{{ 99999999999999999999999 }}",
    ])
    func resourceLimitsAreErrors(source: String) {
        #expect(throws: ChatTemplateError.self) { try render(source) }
    }

    /// Random edits of real templates: every outcome is fine except a crash.
    @Test func mutatedTemplatesNeverCrash() throws {
        let fixture = try ChatTemplateCases.load()
        let sources = Array(Set(fixture.cases.map(\.source))).sorted()
        let alphabet = Array("{}%#-+()[]'\"|.,:=~*/ \nifendforsetxloop0123456789\\")
        var rng = SplitMix(seed: 0x5EED)
        var rendered = 0
        for round in 0..<3000 {
            var scalars = Array(sources[round % sources.count])
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                guard !scalars.isEmpty else { break }
                let at = Int(rng.next() % UInt64(scalars.count))
                switch rng.next() % 3 {
                case 0: scalars.remove(at: at)
                case 1: scalars.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: scalars[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                }
            }
            if (try? render(String(scalars))) != nil { rendered += 1 }
        }
        #expect(rendered > 0)
    }

    @Test func errorDescriptions() {
        #expect(ChatTemplateError.raised("Conversation roles must alternate").description == "Conversation roles must alternate")
        #expect(throws: ChatTemplateError.raised("boom")) { try render("{{ raise_exception('boom') }}") }
        #expect(throws: ChatTemplateError.syntax("line 2: Encountered unknown tag 'bogus'.")) {
            try ChatTemplate(source: "ok\n{% bogus %}")
        }
    }
}

/// A deterministic generator, so failures reproduce.
typealias SplitMix = SplitMix64

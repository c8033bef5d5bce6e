import Foundation
import Testing
import Tokenization

/// One case of Fixtures/chat_templates/cases.json, written by
/// scripts/fixtures/make_chat_templates.py from jinja2 configured like transformers.
struct ChatTemplateCase: Decodable, Sendable {
    struct Message: Decodable, Sendable {
        let role: String
        let content: String
    }

    let name: String
    let source: String
    let messages: [Message]
    let add_generation_prompt: Bool
    let bos: String?
    let eos: String?
    /// Extra template variables as JSON text, parsed with key order preserved.
    let extra_context_json: String
    let expected: String?
    let error_kind: String?
    let error_message: String?
    let error_line: Int?
}

struct ChatTemplateCases: Decodable, Sendable {
    let now: String
    let cases: [ChatTemplateCase]

    static func load() throws -> ChatTemplateCases {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("chat_templates/cases.json")
        return try JSONDecoder().decode(ChatTemplateCases.self, from: Data(contentsOf: url))
    }

    /// The fixed `strftime_now` time of the fixtures (a naive local time in Python).
    var fixedDate: Date {
        get throws {
            let parts = now.split(whereSeparator: { "-T:".contains($0) }).compactMap { Int($0) }
            try #require(parts.count == 6)
            var components = DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: parts[3],
                                            minute: parts[4], second: parts[5])
            components.timeZone = TimeZone.current
            return try #require(Calendar(identifier: .gregorian).date(from: components))
        }
    }
}

/// Every case must render byte for byte like jinja2, or fail the same way.
@Suite struct ChatTemplateFixtureTests {
    static func run(_ item: ChatTemplateCase, now: Date) -> Result<String, Error> {
        Result {
            var template = try ChatTemplate(source: item.source)
            template.now = { now }
            guard case .object(let extra) = try JinjaValue(json: item.extra_context_json) else {
                throw ChatTemplateError.runtime("extra context is not an object")
            }
            return try template.render(
                messages: item.messages.map { ChatMessage(role: $0.role, content: $0.content) },
                addGenerationPrompt: item.add_generation_prompt, bosToken: item.bos, eosToken: item.eos,
                extraContext: Dictionary(uniqueKeysWithValues: extra.pairs.map { ($0.key, $0.value) }))
        }
    }

    @Test func fixturesMatchJinja() throws {
        let fixture = try ChatTemplateCases.load()
        let now = try fixture.fixedDate
        #expect(fixture.cases.count > 300)
        for item in fixture.cases {
            let result = Self.run(item, now: now)
            switch (item.error_kind, result) {
            case (nil, .success(let output)):
                #expect(output == item.expected, "\(item.name)")
            case ("raised", .failure(let error)):
                #expect(error as? ChatTemplateError == .raised(item.error_message ?? ""), "\(item.name)")
            case ("runtime", .failure(let error)):
                guard case .runtime? = error as? ChatTemplateError else {
                    Issue.record("\(item.name): expected a runtime error, got \(error)")
                    continue
                }
            case ("syntax", .failure(let error)):
                guard case .syntax(let message)? = error as? ChatTemplateError else {
                    Issue.record("\(item.name): expected a syntax error, got \(error)")
                    continue
                }
                #expect(message.hasPrefix("line \(item.error_line ?? -1): "), "\(item.name): \(message)")
            default:
                Issue.record("\(item.name): expected \(item.error_kind ?? "success"), got \(result)")
            }
        }
    }

    /// Jinja's own wording for the errors whose message text the fixture records exactly.
    @Test func syntaxMessagesMatchJinja() throws {
        let fixture = try ChatTemplateCases.load()
        let worded = ["synthetic/syntax-unclosed-if", "synthetic/syntax-unknown-tag", "synthetic/syntax-bad-end",
                      "synthetic/syntax-unknown-filter", "synthetic/syntax-unknown-test",
                      "synthetic/syntax-unclosed-comment", "synthetic/syntax-elif-after-else"]
        for item in fixture.cases where worded.contains(item.name) {
            let message = item.error_message ?? ""
            #expect(throws: ChatTemplateError.syntax("line \(item.error_line ?? 0): \(message)"), "\(item.name)") {
                try ChatTemplate(source: item.source)
            }
        }
    }
}

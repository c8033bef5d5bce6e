import Foundation
import LLMuxCore
import Tokenization

/// One string and what the Python `tokenizers` library produced for it.
struct FixtureCase: Decodable {
    let text: String
    let ids: [TokenID]
    let ids_no_special: [TokenID]
    let decoded: String
    let decoded_skip: String
    let prefix_ids: [TokenID]
    let prefix_decoded: String
}

/// A fixture's cases.json, written by scripts/fixtures/make_tokenizers.py.
struct FixtureCases: Decodable {
    let vocab_size: Int
    let cases: [FixtureCase]
}

enum Fixtures {
    /// The fixture tokenizers, one per style.
    static let names = ["llama3", "gpt2", "llama2", "mistral", "misc"]

    static func directory(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(directory: directory(name))
    }

    static func cases(_ name: String) throws -> FixtureCases {
        let data = try Data(contentsOf: directory(name).appendingPathComponent("cases.json"))
        return try JSONDecoder().decode(FixtureCases.self, from: data)
    }

    /// Escapes a string for a readable failure message.
    static func show(_ text: String) -> String {
        text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "\\u{\(String($0.value, radix: 16))}" }
            .joined()
    }

    /// `nil` when the strings are equal scalar for scalar, else the first difference in context.
    static func difference(_ actual: String, _ expected: String) -> String? {
        let a = Array(actual.unicodeScalars), e = Array(expected.unicodeScalars)
        if a == e { return nil }
        var index = 0
        while index < min(a.count, e.count), a[index] == e[index] { index += 1 }
        func around(_ s: [Unicode.Scalar]) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s[max(0, index - 10)..<min(s.count, index + 20)])
            return show(String(view))
        }
        return "at scalar \(index): got '\(around(a))' expected '\(around(e))'"
    }
}

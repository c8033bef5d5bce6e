import LLMuxCore

/// One entry of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable {
    let id: TokenID
    let content: String
    let special: Bool
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool

    init(_ node: JSONNode) throws {
        let id = try node["id"].int()
        guard id >= 0, id <= Int(Int32.max) else { throw node["id"].invalid("token id \(id) is out of range") }
        self.id = TokenID(id)
        content = try node["content"].string()
        special = try node["special"].bool(default: false)
        singleWord = try node["single_word"].bool(default: false)
        lstrip = try node["lstrip"].bool(default: false)
        rstrip = try node["rstrip"].bool(default: false)
        normalized = try node["normalized"].bool(default: !special)
    }
}

/// A run of text that is either an added token or plain text still to be tokenized.
enum Segment {
    case token(TokenID)
    case text(Piece)
}

/// Finds added tokens in text, leftmost first and longest among those starting at the same
/// place, like the Aho-Corasick `LeftmostLongest` matcher of the Rust library.
struct AddedTokenMatcher: Sendable {
    private struct Candidate: Sendable {
        let bytes: [UInt8]
        let token: AddedToken
    }

    /// Candidates by first byte, longest first.
    private let byFirstByte: [[Candidate]]
    let isEmpty: Bool

    /// `patterns` pairs each token with the text to look for (its content, or its normalized form).
    init(_ patterns: [(pattern: String, token: AddedToken)]) {
        var buckets = [[Candidate]](repeating: [], count: 256)
        for (pattern, token) in patterns where !pattern.isEmpty {
            let bytes = Array(pattern.utf8)
            buckets[Int(bytes[0])].append(Candidate(bytes: bytes, token: token))
        }
        byFirstByte = buckets.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
        isEmpty = patterns.isEmpty
    }

    /// Splits `piece` into added tokens and the text between them (empty texts are dropped).
    func split(_ piece: Piece) -> [Segment] {
        if isEmpty || piece.text.isEmpty { return piece.text.isEmpty ? [] : [.text(piece)] }
        let bytes = Array(piece.text.utf8)
        var segments: [Segment] = []
        var emitted = 0  // everything before this byte offset has been emitted
        var cursor = 0   // the matcher resumes here (the end of the last raw match)
        func text(_ range: Range<Int>) -> Piece {
            Piece(text: String(decoding: bytes[range], as: UTF8.self), atStart: piece.atStart && range.lowerBound == 0)
        }
        while cursor < bytes.count {
            guard let (start, candidate) = nextMatch(in: bytes, from: cursor) else { break }
            var matchStart = start
            var matchEnd = start + candidate.bytes.count
            cursor = matchEnd
            let token = candidate.token
            if token.singleWord {
                let before = matchStart == 0 || !endsWithWord(bytes, at: matchStart)
                let after = matchEnd == bytes.count || !startsWithWord(bytes, at: matchEnd)
                if !before || !after { continue }
            }
            if token.lstrip {
                // Never reach back into text an earlier token already claimed.
                matchStart = max(emitted, leadingWhitespaceStart(bytes, before: matchStart))
            }
            if token.rstrip { matchEnd = trailingWhitespaceEnd(bytes, from: matchEnd) }
            if emitted < matchStart { segments.append(.text(text(emitted..<matchStart))) }
            segments.append(.token(token.id))
            emitted = matchEnd
        }
        if emitted < bytes.count { segments.append(.text(text(emitted..<bytes.count))) }
        return segments
    }

    private func nextMatch(in bytes: [UInt8], from start: Int) -> (Int, Candidate)? {
        var position = start
        while position < bytes.count {
            for candidate in byFirstByte[Int(bytes[position])]
            where position + candidate.bytes.count <= bytes.count
                && bytes[position..<position + candidate.bytes.count].elementsEqual(candidate.bytes) {
                return (position, candidate)
            }
            position += 1
        }
        return nil
    }
}

// The Rust library uses the regexes `\w$`, `^\w`, `\s*$` and `^\s*` (Unicode semantics).
private func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

/// The scalar ending at byte offset `end` and where it starts (UTF-8 is self-synchronizing).
private func scalar(endingAt end: Int, in bytes: [UInt8]) -> (scalar: Unicode.Scalar, start: Int)? {
    guard end > 0 else { return nil }
    var start = end - 1
    while start > 0, bytes[start] & 0xC0 == 0x80 { start -= 1 }
    return String(decoding: bytes[start..<end], as: UTF8.self).unicodeScalars.first.map { ($0, start) }
}

/// The scalar starting at byte offset `start` and where it ends.
private func scalar(startingAt start: Int, in bytes: [UInt8]) -> (scalar: Unicode.Scalar, end: Int)? {
    guard start < bytes.count else { return nil }
    var end = start + 1
    while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
    return String(decoding: bytes[start..<end], as: UTF8.self).unicodeScalars.first.map { ($0, end) }
}

private func endsWithWord(_ bytes: [UInt8], at end: Int) -> Bool {
    scalar(endingAt: end, in: bytes).map { isWordScalar($0.scalar) } ?? false
}

private func startsWithWord(_ bytes: [UInt8], at start: Int) -> Bool {
    scalar(startingAt: start, in: bytes).map { isWordScalar($0.scalar) } ?? false
}

/// Byte offset where the whitespace run ending at `end` begins.
private func leadingWhitespaceStart(_ bytes: [UInt8], before end: Int) -> Int {
    var start = end
    while let previous = scalar(endingAt: start, in: bytes), previous.scalar.properties.isWhitespace {
        start = previous.start
    }
    return start
}

/// Byte offset just after the whitespace run starting at `start`.
private func trailingWhitespaceEnd(_ bytes: [UInt8], from start: Int) -> Int {
    var end = start
    while let next = scalar(startingAt: end, in: bytes), next.scalar.properties.isWhitespace {
        end = next.end
    }
    return end
}

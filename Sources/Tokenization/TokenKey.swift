/// A dictionary key that compares strings by their exact UTF-8 bytes.
///
/// Swift's `String ==` treats canonically equivalent strings ("é" and "e\u{301}") as equal, but a
/// vocabulary may hold both as different tokens, so vocab lookups must not use it.
struct TokenKey: Hashable, Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (lhs: TokenKey, rhs: TokenKey) -> Bool {
        lhs.text.utf8.elementsEqual(rhs.text.utf8)
    }

    func hash(into hasher: inout Hasher) {
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension String {
    /// Replaces every occurrence of `pattern` by comparing UTF-8 bytes, i.e. scalar for scalar,
    /// the way Rust's `str::replace` does (Foundation's version compares canonically).
    func replacingBytes(_ pattern: String, with replacement: String) -> String {
        let needle = Array(pattern.utf8)
        guard !needle.isEmpty else { return self }
        let hay = Array(utf8)
        guard hay.count >= needle.count else { return self }
        let with = Array(replacement.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(hay.count)
        var index = 0
        var changed = false
        while index < hay.count {
            if hay[index] == needle[0], index + needle.count <= hay.count,
               hay[index..<index + needle.count].elementsEqual(needle) {
                out.append(contentsOf: with)
                index += needle.count
                changed = true
            } else {
                out.append(hay[index])
                index += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : self
    }

    /// Whether the first Unicode scalar is `scalar` (not the first grapheme, as `hasPrefix` checks).
    func startsWithScalar(_ scalar: Unicode.Scalar) -> Bool { unicodeScalars.first == scalar }
}

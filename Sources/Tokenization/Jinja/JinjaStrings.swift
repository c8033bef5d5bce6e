/// Python `str` operations on Unicode scalars. Swift's String compares by grapheme clusters and
/// canonical equivalence, but Python matches code points, and output must match Python exactly.
enum JinjaStrings {
    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    static func string<C: Collection>(_ scalars: C) -> String where C.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Index (in scalars) of the first occurrence of `needle` at or after `from`, or nil.
    static func find(_ needle: String, in haystack: String, from: Int = 0) -> Int? {
        find(scalars(needle), in: scalars(haystack), from: from)
    }

    static func find(_ needle: [Unicode.Scalar], in hay: [Unicode.Scalar], from: Int = 0) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = max(0, from)
        while i + needle.count <= hay.count {
            if hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// `str.strip/lstrip/rstrip(chars)`; without `chars`, Python whitespace.
    static func strip(_ s: String, chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let strip: (Unicode.Scalar) -> Bool = { set?.contains($0) ?? isPythonSpace($0) }
        let a = scalars(s)
        var lo = 0
        var hi = a.count
        if leading { while lo < hi, strip(a[lo]) { lo += 1 } }
        if trailing { while hi > lo, strip(a[hi - 1]) { hi -= 1 } }
        return string(a[lo..<hi])
    }

    /// `str.split(sep, maxsplit)`; without `sep`, splits on runs of whitespace and drops empties.
    static func split(_ s: String, separator: String?, maxSplit: Int) throws -> [String] {
        let a = scalars(s)
        var parts: [String] = []
        guard let separator else {
            var i = 0
            while i < a.count {
                while i < a.count, isPythonSpace(a[i]) { i += 1 }
                guard i < a.count else { break }
                if maxSplit >= 0, parts.count == maxSplit {
                    var end = a.count
                    while end > i, isPythonSpace(a[end - 1]) { end -= 1 }
                    parts.append(string(a[i..<end]))
                    break
                }
                let start = i
                while i < a.count, !isPythonSpace(a[i]) { i += 1 }
                parts.append(string(a[start..<i]))
            }
            return parts
        }
        let sep = scalars(separator)
        guard !sep.isEmpty else { throw ChatTemplateError.runtime("empty separator") }
        var start = 0
        while maxSplit < 0 || parts.count < maxSplit, let hit = find(sep, in: a, from: start) {
            parts.append(string(a[start..<hit]))
            start = hit + sep.count
        }
        parts.append(string(a[start...]))
        return parts
    }

    /// `str.replace(old, new, count)`; an empty `old` inserts `new` between every character.
    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let a = scalars(s)
        let o = scalars(old)
        let n = scalars(new)
        var out: [Unicode.Scalar] = []
        var done = 0
        var i = 0
        if o.isEmpty {
            for scalar in a {
                if count < 0 || done < count { out += n; done += 1 }
                out.append(scalar)
            }
            if count < 0 || done < count { out += n }
            return string(out)
        }
        while i < a.count {
            if count < 0 || done < count, i + o.count <= a.count, a[i..<i + o.count].elementsEqual(o) {
                out += n
                i += o.count
                done += 1
            } else {
                out.append(a[i])
                i += 1
            }
        }
        return string(out)
    }

    /// Python `str.capitalize`: first character upper-cased, the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + string(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// Python `str.title`: a letter after a non-letter is upper-cased, other letters lower-cased.
    static func pythonTitle(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in s.unicodeScalars {
            let isCased = scalar.properties.isCased
            out += previousCased ? String(scalar).lowercased() : String(scalar).uppercased()
            previousCased = isCased
        }
        return out
    }

    /// Jinja's `title` filter: words start after whitespace, `-`, or an opening bracket.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var atWordStart = true
        for scalar in s.unicodeScalars {
            let boundary = isPythonSpace(scalar) || "-({[<".unicodeScalars.contains(scalar)
            if boundary {
                out.unicodeScalars.append(scalar)
                atWordStart = true
            } else {
                out += atWordStart ? String(scalar).uppercased() : String(scalar).lowercased()
                atWordStart = false
            }
        }
        return out
    }
}

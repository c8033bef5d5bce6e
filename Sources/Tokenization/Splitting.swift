import Foundation

/// A piece of input text moving through normalization and pre-tokenization.
struct Piece {
    /// The piece's current (possibly normalized or byte-mapped) text.
    var text: String
    /// Whether the piece begins at offset 0 of the original input; Metaspace's "first"
    /// prepend scheme only applies there.
    var atStart: Bool
}

/// How a split treats the delimiters it finds (the `behavior` key of the Split pre-tokenizer).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// Turns a cover of `count` units into the kept ranges, as the Rust `NormalizedString::split`.
    func apply(_ parts: [(range: Range<Int>, isMatch: Bool)]) -> [Range<Int>] {
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        switch self {
        case .removed:
            out = parts.filter { !$0.isMatch }
        case .isolated:
            out = parts
        case .mergedWithPrevious:
            var previousMatch = false
            for part in parts {
                if part.isMatch, !previousMatch, let last = out.last {
                    out[out.count - 1].range = last.range.lowerBound..<part.range.upperBound
                } else {
                    out.append((part.range, false))
                }
                previousMatch = part.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for part in parts.reversed() {
                if part.isMatch, !previousMatch, let last = out.last {
                    out[out.count - 1].range = part.range.lowerBound..<last.range.upperBound
                } else {
                    out.append((part.range, false))
                }
                previousMatch = part.isMatch
            }
            out.reverse()
        case .contiguous:
            for part in parts {
                if let last = out.last, last.isMatch == part.isMatch {
                    out[out.count - 1].range = last.range.lowerBound..<part.range.upperBound
                } else {
                    out.append(part)
                }
            }
        }
        return out.map(\.range).filter { !$0.isEmpty }
    }
}

/// An ICU regular expression shared between threads.
///
/// `NSRegularExpression` is immutable after creation and documented as safe to use from several
/// threads at once; it is just not annotated `Sendable` in corelibs-foundation.
final class SharedRegex: @unchecked Sendable {
    private let regex: NSRegularExpression

    init(pattern: String) throws {
        regex = try NSRegularExpression(pattern: pattern, options: [])
    }

    /// Splits `piece` around the matches; offsets are UTF-16 units, which never cut a scalar
    /// because ICU only matches whole code points.
    func split(_ piece: Piece, behavior: SplitBehavior, invert: Bool) -> [Piece] {
        let units = Array(piece.text.utf16)
        guard !units.isEmpty else { return [] }
        var parts: [(range: Range<Int>, isMatch: Bool)] = []
        var previous = 0
        let matches = regex.matches(in: piece.text, options: [], range: NSRange(location: 0, length: units.count))
        for match in matches {
            let start = match.range.location, end = start + match.range.length
            if start > previous { parts.append((previous..<start, invert)) }
            parts.append((start..<end, !invert))
            previous = end
        }
        if previous < units.count { parts.append((previous..<units.count, invert)) }
        return behavior.apply(parts).map { range in
            Piece(text: String(decoding: units[range], as: UTF16.self), atStart: piece.atStart && range.lowerBound == 0)
        }
    }

    /// Replaces every match with `replacement` taken literally.
    func replace(in text: String, with replacement: String) -> String {
        let range = NSRange(location: 0, length: text.utf16.count)
        let template = NSRegularExpression.escapedTemplate(for: replacement)
        return regex.stringByReplacingMatches(in: text, options: [], range: range, withTemplate: template)
    }
}

/// Splits `piece` on every occurrence of `scalar` (Metaspace's `split: true` uses MergedWithNext).
func splitOnScalar(_ piece: Piece, _ scalar: Unicode.Scalar, behavior: SplitBehavior) -> [Piece] {
    let scalars = Array(piece.text.unicodeScalars)
    var parts: [(range: Range<Int>, isMatch: Bool)] = []
    var previous = 0
    for (index, candidate) in scalars.enumerated() where candidate == scalar {
        if index > previous { parts.append((previous..<index, false)) }
        parts.append((index..<index + 1, true))
        previous = index + 1
    }
    if previous < scalars.count { parts.append((previous..<scalars.count, false)) }
    return behavior.apply(parts).map { range in
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[range])
        return Piece(text: String(view), atStart: piece.atStart && range.lowerBound == 0)
    }
}

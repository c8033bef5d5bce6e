/// What one call of `BodyFramer.step` found at the front of the bytes it was given.
struct FramingStep: Equatable {
    /// How the forwarded bytes are to be written to a chunked client response.
    enum Kind: Equatable {
        /// Whole chunks, size lines and CRLFs included: valid chunked framing as they are.
        case framed
        /// Body bytes without framing (a piece of a chunk, or a content-length or close-delimited
        /// body): a chunked client response must frame them.
        case payload
    }

    /// Bytes at the front taken as framing only (size lines, CRLFs, the last chunk, trailers):
    /// consumed, not forwarded.
    var skipped: Int
    /// Bytes right after those to forward.
    var forward: Int
    var kind: Kind
    /// The body is complete after `skipped + forward` bytes.
    var ended: Bool

    static func skip(_ n: Int, ended: Bool = false) -> FramingStep { FramingStep(skipped: n, forward: 0, kind: .payload, ended: ended) }
}

/// An upstream body framing error (bad chunk size line, missing CRLF after a chunk's data).
struct BodyFramingError: Error, Equatable, CustomStringConvertible {
    var reason: String
    var description: String { "malformed upstream body: \(reason)" }
}

/// Finds where an upstream response body ends, over the raw bytes as they arrive, without
/// copying them, and tells what of them can be forwarded verbatim.
///
/// For a chunked body, runs of whole chunks (size line, data, CRLF all in view) come back as one
/// `.framed` step, so the proxy writes them to its chunked client response unchanged: no decoding
/// and re-encoding per chunk. Only a chunk split across reads is taken apart: its data comes back
/// as `.payload` pieces, which the client side frames as chunks of their own. Either way what has
/// been forwarded always ends on a chunk boundary of the client's response, so a failure at any
/// point can still be followed by a well-formed error chunk and terminator. The last chunk and
/// any trailers are consumed, not forwarded (the client side writes its own terminator).
struct BodyFramer {
    enum State: Equatable {
        case done
        /// `content-length` bytes left.
        case length(Int)
        case untilClose
        /// At a chunk boundary (a size line starts here).
        case boundary
        /// In a size line: its value so far and its digit count.
        case size(Int, digits: Int)
        /// In a chunk extension (`;name=value`), skipped.
        case chunkExtension(Int)
        /// A CR ended the size line; its LF is next.
        case sizeLF(Int)
        /// Chunk data bytes left.
        case data(Int)
        /// After a chunk's data: its CR (or a bare LF).
        case dataCR
        case dataLF
        /// After the last chunk, at the start of a trailer line or the final blank line.
        case trailerStart
        case trailer
        /// The CR of the final blank line was seen.
        case finalLF
    }

    private(set) var state: State
    /// Framing bytes consumed since the last chunk boundary (a size line, an extension or the
    /// trailers), bounded so that a broken upstream cannot make the gateway read forever.
    private var framingBytes = 0
    static let maxFramingBytes = 64 * 1024
    /// Every chunk is taken apart into `.payload` steps, never passed on `.framed`: for a
    /// chunked client request body, which the gateway needs decoded (it reads the JSON).
    let decodes: Bool

    init(_ length: BodyLength, decodes: Bool = false) {
        self.decodes = decodes
        switch length {
        case .none, .length(0): state = .done
        case .length(let n): state = .length(n)
        case .chunked: state = .boundary
        case .untilClose: state = .untilClose
        }
    }

    /// True once the body is complete.
    var isDone: Bool { state == .done }

    /// Consumes bytes from the front of `bytes` (at least one when `bytes` is not empty and the
    /// body is not done) and says what to do with them. Call again on the rest until the bytes
    /// are used up or the step says the body ended.
    mutating func step(_ bytes: UnsafeRawBufferPointer) throws(BodyFramingError) -> FramingStep {
        switch state {
        case .done:
            return .skip(0, ended: true)
        case .length(let left):
            let n = min(left, bytes.count)
            state = n == left ? .done : .length(left - n)
            return FramingStep(skipped: 0, forward: n, kind: .payload, ended: n == left)
        case .untilClose:
            return FramingStep(skipped: 0, forward: bytes.count, kind: .payload, ended: false)
        case .boundary where !decodes:
            // The common case: every chunk of this read is whole. Forward them all as they are.
            var run = 0
            while let length = Self.wholeChunk(bytes, at: run) { run += length }
            if run > 0 { return FramingStep(skipped: 0, forward: run, kind: .framed, ended: false) }
            return try slowStep(bytes)
        default:
            return try slowStep(bytes)
        }
    }

    /// The length of the whole non-last chunk at `start` (size line with CRLF, optional extension,
    /// data, CRLF), or nil when it is not all in view, is the last chunk, or is not framed
    /// strictly enough to be passed on verbatim (then `slowStep` takes it apart or rejects it).
    static func wholeChunk(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Int? {
        let count = bytes.count
        var i = start
        var size = 0
        while i < count, let digit = hexValue(bytes[i]) {
            guard i - start < 15 else { return nil }
            size = size << 4 | digit
            i += 1
        }
        guard i > start, size > 0, i < count else { return nil }
        if bytes[i] == UInt8(ascii: ";") {
            while i < count, bytes[i] != 0x0D {
                if bytes[i] == 0x0A { return nil }
                i += 1
            }
        }
        guard count - i >= 2, bytes[i] == 0x0D, bytes[i + 1] == 0x0A else { return nil }
        i += 2
        guard count - i >= size + 2 else { return nil }
        i += size
        guard bytes[i] == 0x0D, bytes[i + 1] == 0x0A else { return nil }
        return i + 2 - start
    }

    /// The chunked-body state machine, byte by byte through framing and by count through data.
    /// Returns at the first data bytes (as `.payload`), at a chunk boundary (so the next step can
    /// take the fast path), at the body's end, or when the bytes run out.
    private mutating func slowStep(_ bytes: UnsafeRawBufferPointer) throws(BodyFramingError) -> FramingStep {
        var i = 0
        while i < bytes.count {
            if case .data(let left) = state {
                let n = min(left, bytes.count - i)
                state = n == left ? .dataCR : .data(left - n)
                return FramingStep(skipped: i, forward: n, kind: .payload, ended: false)
            }
            let byte = bytes[i]
            i += 1
            framingBytes += 1
            guard framingBytes <= Self.maxFramingBytes else { throw BodyFramingError(reason: "chunk framing or trailers too long") }
            switch state {
            case .boundary:
                guard let digit = Self.hexValue(byte) else { throw BodyFramingError(reason: "bad chunk size") }
                state = .size(digit, digits: 1)
            case .size(let value, let digits):
                if let digit = Self.hexValue(byte) {
                    guard digits < 15 else { throw BodyFramingError(reason: "chunk size too large") }
                    state = .size(value << 4 | digit, digits: digits + 1)
                } else if byte == UInt8(ascii: ";") || byte == 0x20 || byte == 0x09 {
                    state = .chunkExtension(value)
                } else if byte == 0x0D {
                    state = .sizeLF(value)
                } else if byte == 0x0A {
                    endSizeLine(value)
                } else {
                    throw BodyFramingError(reason: "bad chunk size")
                }
            case .chunkExtension(let value):
                if byte == 0x0D { state = .sizeLF(value) } else if byte == 0x0A { endSizeLine(value) }
            case .sizeLF(let value):
                guard byte == 0x0A else { throw BodyFramingError(reason: "bad chunk size line ending") }
                endSizeLine(value)
            case .dataCR:
                if byte == 0x0D {
                    state = .dataLF
                } else if byte == 0x0A {
                    return atBoundary(i)
                } else {
                    throw BodyFramingError(reason: "chunk data not followed by CRLF")
                }
            case .dataLF:
                guard byte == 0x0A else { throw BodyFramingError(reason: "chunk data not followed by CRLF") }
                return atBoundary(i)
            case .trailerStart:
                if byte == 0x0D {
                    state = .finalLF
                } else if byte == 0x0A {
                    state = .done
                    return .skip(i, ended: true)
                } else {
                    state = .trailer
                }
            case .trailer:
                if byte == 0x0A { state = .trailerStart }
            case .finalLF:
                guard byte == 0x0A else { throw BodyFramingError(reason: "bad trailer section ending") }
                state = .done
                return .skip(i, ended: true)
            case .done, .length, .untilClose, .data:
                preconditionFailure("not a chunk framing state")
            }
        }
        return .skip(i)
    }

    private mutating func endSizeLine(_ size: Int) {
        state = size == 0 ? .trailerStart : .data(size)
    }

    private mutating func atBoundary(_ consumed: Int) -> FramingStep {
        state = .boundary
        framingBytes = 0
        return .skip(consumed)
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte &- UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte &- UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}

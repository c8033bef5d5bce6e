@testable import Gateway
import Testing

/// `BodyFramer` over bodies cut into reads at every possible place: what it forwards, framed as
/// a chunked client response would be, must decode to the body's data, end exactly where the
/// body ends, and only ever stop on a chunk boundary of that client response.
@Suite struct BodyFramerTests {
    /// What the client of the proxy would receive, and how the framer reported it.
    struct Forwarded {
        /// The client response's body bytes: framed runs as they are, payload framed as a chunk.
        var client: [UInt8] = []
        var payload: [UInt8] = []
        var framedRuns = 0
        var payloadPieces = 0
        /// Input bytes consumed when the framer said the body ended; nil if it never did.
        var endedAt: Int?
    }

    /// Feeds `body` to a framer in pieces cut at `cuts` (sorted offsets) and records the steps.
    static func run(_ body: [UInt8], length: BodyLength, cuts: [Int]) throws -> Forwarded {
        var framer = BodyFramer(length)
        var out = Forwarded()
        var consumed = 0
        let bounds = [0] + cuts + [body.count]
        outer: for (start, end) in zip(bounds, bounds.dropFirst()) where start < end {
            var piece = Array(body[start..<end])
            while !piece.isEmpty {
                let step = try piece.withUnsafeBytes { try framer.step($0) }
                let forwarded = Array(piece[step.skipped..<(step.skipped + step.forward)])
                if !forwarded.isEmpty {
                    switch step.kind {
                    case .framed:
                        out.framedRuns += 1
                        out.client += forwarded
                        out.payload += try decodeChunks(forwarded, complete: false).data
                    case .payload:
                        out.payloadPieces += 1
                        out.client += Array(String(forwarded.count, radix: 16).utf8) + [13, 10] + forwarded + [13, 10]
                        out.payload += forwarded
                    }
                }
                consumed += step.skipped + step.forward
                piece.removeFirst(step.skipped + step.forward)
                if step.ended {
                    out.endedAt = consumed
                    break outer
                }
                #expect(step.skipped + step.forward > 0)
            }
        }
        return out
    }

    /// A strict chunked decoder (CRLF everywhere): data, and the offset after the last chunk's
    /// blank line when `complete`.
    static func decodeChunks(_ bytes: [UInt8], complete: Bool) throws -> (data: [UInt8], end: Int) {
        struct Bad: Error {}
        var i = 0
        var data: [UInt8] = []
        while i < bytes.count {
            var size = 0
            var digits = 0
            while i < bytes.count, let d = BodyFramer.hexValue(bytes[i]) { size = size * 16 + d; i += 1; digits += 1 }
            guard digits > 0 else { throw Bad() }
            while i < bytes.count, bytes[i] != 13 { i += 1 }  // extension
            guard i + 1 < bytes.count, bytes[i] == 13, bytes[i + 1] == 10 else { throw Bad() }
            i += 2
            if size == 0 {
                guard complete, i + 1 < bytes.count, bytes[i] == 13, bytes[i + 1] == 10 else { throw Bad() }
                return (data, i + 2)
            }
            guard i + size + 2 <= bytes.count, bytes[i + size] == 13, bytes[i + size + 1] == 10 else { throw Bad() }
            data += bytes[i..<(i + size)]
            i += size + 2
        }
        guard !complete else { throw Bad() }
        return (data, i)
    }

    static func chunked(_ pieces: [String], extensions: Bool = false, trailers: String = "") -> [UInt8] {
        var out = ""
        for piece in pieces {
            out += String(piece.utf8.count, radix: 16) + (extensions ? ";name=\"v\"" : "") + "\r\n" + piece + "\r\n"
        }
        return Array((out + "0\r\n" + trailers + "\r\n").utf8)
    }

    static let events = ["data: {\"choices\":[{\"text\":\" tok0\"}]}\n\n", "data: {\"choices\":[{\"text\":\" tok1\"}]}\n\n",
                         String(repeating: "x", count: 300), "data: [DONE]\n\n"]

    /// Checks one cut of a chunked body: data intact, end found, client bytes a valid chunked prefix.
    static func check(_ body: [UInt8], expected: [UInt8], cuts: [Int]) throws {
        let out = try run(body + Array("HTTP/1.1 200".utf8), length: .chunked, cuts: cuts)
        #expect(out.payload == expected, "cuts \(cuts)")
        #expect(out.endedAt == body.count, "cuts \(cuts)")
        #expect(try decodeChunks(out.client, complete: false).data == expected, "cuts \(cuts)")
    }

    @Test func wholeChunksInOneReadAreForwardedAsOneFramedRun() throws {
        let body = Self.chunked(Self.events)
        let out = try Self.run(body, length: .chunked, cuts: [])
        #expect(out.framedRuns == 1 && out.payloadPieces == 0)
        #expect(out.client == Array(body[0..<(body.count - 5)]))  // all but "0\r\n\r\n"
        #expect(out.endedAt == body.count)
    }

    @Test func everySingleCut() throws {
        for extensions in [false, true] {
            for trailers in ["", "x-checksum: 1\r\nx-other: two\r\n"] {
                let body = Self.chunked(Self.events, extensions: extensions, trailers: trailers)
                let expected = Array(Self.events.joined().utf8)
                for cut in 0...body.count { try Self.check(body, expected: expected, cuts: [cut]) }
            }
        }
    }

    @Test func everyPairOfCutsAndByteByByte() throws {
        let body = Self.chunked(["ab", String(repeating: "y", count: 20), "c"], extensions: true, trailers: "t: 1\r\n")
        let expected = Array("ab\(String(repeating: "y", count: 20))c".utf8)
        for first in 0...body.count {
            for second in first...body.count { try Self.check(body, expected: expected, cuts: [first, second]) }
        }
        try Self.check(body, expected: expected, cuts: Array(1..<body.count))
    }

    @Test func largeSizesAndBareLineFeeds() throws {
        let big = String(repeating: "z", count: 0x1234)
        try Self.check(Self.chunked([big, "q"]), expected: Array((big + "q").utf8), cuts: [3, 100, 0x1000])
        // Bare LFs are accepted, but such chunks are not forwarded verbatim.
        let lenient = Array("3\nabc\n0\n\n".utf8)
        let out = try Self.run(lenient, length: .chunked, cuts: [])
        #expect(out.payload == Array("abc".utf8) && out.framedRuns == 0 && out.endedAt == lenient.count)
    }

    @Test func malformedChunksAreRejected() {
        for bad in ["x\r\n", "3\r\nabcX\r\n", "3\r\nabc\rX", "3\rX", "1234567890abcdef\r\n", "0\r\nt: 1\r\n\rX"] {
            #expect(throws: BodyFramingError.self, "\(bad)") { _ = try Self.run(Array(bad.utf8), length: .chunked, cuts: []) }
        }
    }

    @Test func contentLengthBodies() throws {
        let body = Array("{\"object\":\"text_completion\"}".utf8)
        for cut in 0...body.count {
            let out = try Self.run(body + Array("extra".utf8), length: .length(body.count), cuts: [cut])
            #expect(out.payload == body && out.endedAt == body.count && out.framedRuns == 0)
        }
        let empty = try Self.run([], length: .length(0), cuts: [])
        #expect(empty.payload.isEmpty)
        #expect(BodyFramer(.length(0)).isDone && BodyFramer(.none).isDone)
    }

    @Test func closeDelimitedBodiesNeverEnd() throws {
        let body = Array("data: a\n\ndata: b\n\n".utf8)
        for cut in 0...body.count {
            let out = try Self.run(body, length: .untilClose, cuts: [cut])
            #expect(out.payload == body && out.endedAt == nil)
        }
    }
}

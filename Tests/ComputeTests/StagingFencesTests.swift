@testable import Compute
import LLMuxCore
import Testing

/// The upload ring's books: a block never reuses bytes whose job may still read them, laps wait
/// only for the fences that cover the reused bytes, and unfenced bytes fall back to a full wait.
@Suite struct StagingFencesTests {
    /// A fake event or stream handle.
    func handle(_ value: Int) -> OpaquePointer? { OpaquePointer(bitPattern: value) }

    /// A device model: jobs stage blocks on streams, each job ends with a fence; an event
    /// "completes" when the test says so. Checks every reuse against what is still in use.
    struct Ring {
        var books = StagingFences()
        let ringBytes: Int
        var waitedFences: [[OpaquePointer?]] = []
        var fullWaits = 0
        var recycled: [OpaquePointer?] = []

        init(ringBytes: Int) { self.ringBytes = ringBytes }

        mutating func stage(_ bytes: Int, stream: OpaquePointer?) -> Int? {
            var waited: [[OpaquePointer?]] = []
            var full = 0
            var freed: [OpaquePointer?] = []
            let offset = try! books.reserve(bytes, ringBytes: ringBytes, stream: stream,
                                            waitForFence: { waited.append($0) }, waitForAll: { full += 1 },
                                            recycle: { freed += $0 })
            waitedFences += waited
            fullWaits += full
            recycled += freed
            return offset
        }
    }

    @Test func blocksPackAndLapToTheStartWithoutSplitting() {
        var ring = Ring(ringBytes: 1000)
        #expect(ring.stage(300, stream: handle(1)) == 0)
        #expect(ring.stage(300, stream: handle(1)) == 300)
        #expect(ring.stage(300, stream: handle(1)) == 600)
        ring.books.fence(with: [handle(101)])
        // 300 more do not fit in the 100 left: the block starts the next lap at 0, reusing the
        // first job's bytes [0, 300), which the fence covers: one fence wait, no full wait.
        #expect(ring.stage(300, stream: handle(1)) == 0)
        #expect(ring.waitedFences == [[handle(101)]])
        #expect(ring.fullWaits == 0)
        #expect(ring.recycled == [handle(101)])
        #expect(ring.books.written == 1300)
    }

    @Test func lapsWaitOnlyForTheFencesOfTheReusedBytes() {
        var ring = Ring(ringBytes: 1000)
        // Ten jobs of 100 bytes each, each fenced with its own event on alternating streams.
        for job in 0..<10 {
            #expect(ring.stage(100, stream: handle(1 + job % 2)) == job * 100)
            ring.books.fence(with: [handle(100 + job)])
        }
        #expect(ring.waitedFences.isEmpty)
        // The next 250 bytes reuse [0, 250): jobs 0, 1 and 2 must be done, job 3 need not be.
        #expect(ring.stage(250, stream: handle(1)) == 0)
        #expect(ring.waitedFences == [[handle(100)], [handle(101)], [handle(102)]])
        #expect(ring.books.consumed == 300)
        #expect(ring.books.fences.count == 7)
        // The next 50 fit into [250, 300), already consumed: no wait.
        #expect(ring.stage(50, stream: handle(1)) == 250)
        #expect(ring.waitedFences.count == 3)
        #expect(ring.fullWaits == 0)
    }

    @Test func bytesStagedOnSeveralStreamsNeedAnEventOnEach() {
        var books = StagingFences()
        _ = try! books.reserve(100, ringBytes: 1000, stream: handle(1), waitForFence: { _ in }, waitForAll: {}, recycle: { _ in })
        _ = try! books.reserve(100, ringBytes: 1000, stream: handle(2), waitForFence: { _ in }, waitForAll: {}, recycle: { _ in })
        _ = try! books.reserve(100, ringBytes: 1000, stream: handle(1), waitForFence: { _ in }, waitForAll: {}, recycle: { _ in })
        #expect(books.unfencedStreams == [handle(1), handle(2)])
        books.fence(with: [handle(11), handle(12)])
        #expect(books.unfencedStreams.isEmpty)
        #expect(books.fences.last?.end == 300)
    }

    @Test func aHeldLaunchBlocksFencesAndTheFullWaitUntilReleased() {
        var ring = Ring(ringBytes: 1000)
        #expect(ring.stage(400, stream: handle(1)) == 0)
        ring.books.fence(with: [handle(101)])
        // A sliced launch on stream 2 stages its inputs; its later layers are not queued yet.
        ring.books.hold()
        #expect(ring.stage(400, stream: handle(2)) == 400)
        #expect(!ring.books.canFence, "an event recorded now would not cover the held launch's later kernels")
        // A decode job on stream 1 needs 300 bytes: the lap reuses [0, 300), covered by fence 101.
        #expect(ring.stage(300, stream: handle(1)) == 0)
        #expect(ring.waitedFences == [[handle(101)]])
        // 300 more would reuse [400, 700), the held launch's unfenced bytes: refused, not a full wait.
        var waitedForAll = false
        let refused = try! ring.books.reserve(300, ringBytes: 1000, stream: handle(1), waitForFence: { _ in },
                                              waitForAll: { waitedForAll = true }, recycle: { _ in })
        #expect(refused == nil && !waitedForAll)
        #expect(ring.books.written == 1300, "a refused block books nothing")
        // Once released, a fence covers everything, and the same block is handed out.
        ring.books.release()
        #expect(ring.books.canFence)
        ring.books.fence(with: [handle(201), handle(202)])
        #expect(ring.stage(300, stream: handle(1)) == 300)
        #expect(ring.waitedFences.last == [handle(201), handle(202)])
        #expect(ring.fullWaits == 0)
    }

    @Test func unfencedBytesFallBackToWaitingForEveryStream() {
        var ring = Ring(ringBytes: 1000)
        #expect(ring.stage(400, stream: handle(1)) == 0)
        ring.books.fence(with: [handle(100)])
        #expect(ring.stage(400, stream: handle(1)) == 400)   // never fenced (an engine that does not fence)
        // 400 more start the next lap and reuse [0, 400): fenced, one fence wait.
        #expect(ring.stage(400, stream: handle(1)) == 0)
        #expect(ring.waitedFences == [[handle(100)]])
        #expect(ring.fullWaits == 0)
        // The next 400 reuse [400, 800), which no fence covers: every stream is waited for, and
        // then everything staged so far counts as consumed.
        #expect(ring.stage(400, stream: handle(1)) == 400)
        #expect(ring.fullWaits == 1)
        #expect(ring.books.consumed == ring.books.written - 400)
        #expect(ring.books.fences.isEmpty)
    }

    /// A long random run: every block handed out overlaps no bytes of a job that has not been
    /// waited for (a fence not yet passed, or the current job's own unfenced bytes).
    @Test func randomJobsNeverReuseBytesInUse() throws {
        var generator = SplitMix64(seed: 7)
        var ring = Ring(ringBytes: 4096)
        var pending: [(start: Int, end: Int, event: OpaquePointer?)] = []   // fenced jobs not waited for
        var current: [(Int, Int)] = []                                      // the job being staged
        var nextEvent = 1000
        for _ in 0..<5000 {
            let blocks = 1 + Int(generator.next() % 4)
            for _ in 0..<blocks {
                let bytes = 64 * (1 + Int(generator.next() % 8))
                let before = ring.waitedFences.count
                let fullBefore = ring.fullWaits
                let staged = ring.stage(bytes, stream: handle(1 + Int(generator.next() % 3)))
                let offset = try #require(staged, "nothing is held")
                // Fences waited for are done; a full wait finishes everything fenced.
                let waited = Set(ring.waitedFences[before...].flatMap { $0 })
                pending.removeAll { waited.contains($0.event) }
                if ring.fullWaits > fullBefore { pending = [] }
                let start = ring.books.written - bytes
                #expect(start % 4096 == offset)
                for job in pending {
                    // Same ring offsets one or more laps earlier are still in use.
                    let overlaps = (job.start..<job.end).contains { position in
                        position % 4096 >= offset && position % 4096 < offset + bytes
                    }
                    #expect(!overlaps, "block at \(offset) reuses bytes of a job still in flight")
                }
                for (blockStart, blockEnd) in current {
                    let blockOffset = blockStart % 4096
                    #expect(!(blockOffset < offset + bytes && offset < blockOffset + blockEnd - blockStart),
                            "block reuses the current job's bytes")
                }
                current.append((start, start + bytes))
            }
            let event = handle(nextEvent)
            nextEvent += 1
            ring.books.fence(with: [event])
            pending.append((current.first!.0, current.last!.1, event))
            current = []
        }
        #expect(ring.fullWaits == 0)
        #expect(!ring.waitedFences.isEmpty)
    }
}

/// The books of the upload ring (`CUDAContext.stage`): positions count bytes handed out since the
/// start, so lap k of the ring holds positions [k·ringBytes, (k+1)·ringBytes). A fence says that
/// every byte before its position is consumed once its events (one per stream that staged since
/// the fence before) have completed; reusing the ring then waits for the fences of the lap
/// before, not for every stream of the device.
///
/// Plain value with no CUDA calls, so that its arithmetic is tested without a GPU.
struct StagingFences {
    /// One fence: bytes before `end` are consumed when all of `events` have completed.
    struct Fence {
        var end: Int
        var events: [OpaquePointer?]
    }

    /// Bytes handed out so far (the next block starts here, or at the next lap).
    private(set) var written = 0
    /// Bytes before this position are known consumed.
    private(set) var consumed = 0
    /// Fences not yet passed, oldest first.
    private(set) var fences: [Fence] = []
    /// Streams that staged bytes since the last fence.
    private(set) var unfencedStreams: [OpaquePointer?] = []
    /// Launches spread over several calls that are under way (`hold`): their staged bytes are
    /// read by kernels not queued yet, so no fence may be placed (an event recorded now would not
    /// cover those kernels) and nothing unfenced may be declared consumed.
    private(set) var holds = 0

    /// Hands out a block of `bytes` for `stream` and returns its offset in the ring. The bytes it
    /// reuses (the same offsets one lap earlier) must be consumed first: it passes the oldest
    /// fences (`waitForFence` blocks until a fence's events complete, then its events are handed
    /// to `recycle`), and if no fence covers them it calls `waitForAll` (every stream idle). Nil
    /// while a hold is open and no fence covers them: the caller must not use the ring then.
    mutating func reserve(_ bytes: Int, ringBytes: Int, stream: OpaquePointer?,
                          waitForFence: ([OpaquePointer?]) throws -> Void, waitForAll: () throws -> Void,
                          recycle: ([OpaquePointer?]) -> Void) throws -> Int? {
        let start = start(of: bytes, ringBytes: ringBytes)
        let reusedUpTo = start + bytes - ringBytes
        while consumed < reusedUpTo, let fence = fences.first {
            try waitForFence(fence.events)
            recycle(popFence())
        }
        if consumed < reusedUpTo {
            // Idle streams do not make a held launch's bytes free: its later kernels still read them.
            guard holds == 0 else { return nil }
            try waitForAll()
            recycle(markAllConsumed())
        }
        staged(from: start, bytes: bytes, on: stream)
        return start % ringBytes
    }

    /// The position of a block of `bytes`: the next free one, or the start of the next lap when
    /// the block would run past the end of this one (a block is never split).
    func start(of bytes: Int, ringBytes: Int) -> Int {
        let offset = written % ringBytes
        return offset + bytes > ringBytes ? written + ringBytes - offset : written
    }

    /// Books a block staged at `start` by `stream`.
    mutating func staged(from start: Int, bytes: Int, on stream: OpaquePointer?) {
        written = start + bytes
        if !unfencedStreams.contains(stream) { unfencedStreams.append(stream) }
    }

    /// Whether a fence may be placed now (no hold open and bytes staged since the last fence).
    var canFence: Bool { holds == 0 && !unfencedStreams.isEmpty }

    /// A launch spread over several calls begins: no fences until every hold is released.
    mutating func hold() { holds += 1 }

    /// Such a launch has queued its last kernel.
    mutating func release() {
        precondition(holds > 0, "release without hold")
        holds -= 1
    }

    /// Adds a fence at the current position with the events just recorded on `unfencedStreams`.
    mutating func fence(with events: [OpaquePointer?]) {
        precondition(holds == 0, "fence while a launch is held")
        fences.append(Fence(end: written, events: events))
        unfencedStreams = []
    }

    /// The oldest fence has completed: its bytes are consumed. Returns its events (free again).
    mutating func popFence() -> [OpaquePointer?] {
        let fence = fences.removeFirst()
        consumed = max(consumed, fence.end)
        return fence.events
    }

    /// Every stream was waited for: all bytes so far are consumed and every fence is passed.
    /// Returns the fences' events (free again).
    mutating func markAllConsumed() -> [OpaquePointer?] {
        let events = fences.flatMap(\.events)
        fences = []
        unfencedStreams = []
        consumed = written
        return events
    }
}

import Foundation

/// One stream of the CUDA backend with the device scratch that work queued on it uses: a job's
/// kernels, matrix products and copies all go to one stream, so scratch tied to the stream is
/// never shared by two jobs running at once. Scratch is allocated on first use.
final class StreamSlot: @unchecked Sendable {
    /// The stream (in the primary context, or in a green context: then its kernels run on that
    /// partition's SMs only).
    let stream: OpaquePointer?
    /// Names the slot (0: the main stream). A CUDA graph recorded on a stream keeps that stream's
    /// SMs (its green context) and the slot's scratch (the cuBLASLt workspace) in its nodes, so a
    /// graph is launched only on the slot it was recorded on: two slots running graphs at once
    /// must not share a workspace.
    let key: Int
    /// SMs of the stream's partition (0: the whole device).
    let smCount: Int
    var matmulWorkspace: DeviceBuffer?
    var attentionScratch: DeviceBuffer?
    var sampleScratch: DeviceBuffer?
    /// Per-chunk partial results of the greedy sampling kernels.
    var samplePartials: DeviceBuffer?
    /// Some of this stream's products ran on the main stream: graphs recorded here would miss the
    /// ordering between the two streams, so jobs on it run without graphs.
    var usesMainStream = false

    init(stream: OpaquePointer?, key: Int, smCount: Int = 0) {
        self.stream = stream
        self.key = key
        self.smCount = smCount
    }
}

/// One SM partition: a green context and its streams.
struct SMPartition {
    /// SMs granted.
    let smCount: Int
    /// The green context (nil for the whole device, which uses the primary context).
    let greenContext: OpaquePointer?
    /// Streams of the partition (jobs of different models may run on it at once).
    let streams: [StreamSlot]
}

/// The SM partitionings of one GPU made with CUDA green contexts (cuDevSmResourceSplitByCount,
/// cuDevResourceGenerateDesc, cuGreenCtxCreate, cuGreenCtxStreamCreate). Partitioning 0 is the
/// whole device on streams of the primary context; every other one splits the SMs into groups
/// (multiples of 8 on Hopper) taken one after the other from the device's SM resource.
final class CUDAPartitions {
    let context: CUDAContext
    private(set) var partitionings: [[SMPartition]] = []
    /// Green contexts that only hold a remainder between splits (kept while their splits live).
    private var holders: [OpaquePointer?] = []
    private var nextKey = 1
    /// CUDA priority of stream slot i of every partition (lower runs first; the driver clamps to
    /// its range, [-5, 0] on Hopper), from `LLMUX_STREAM_PRIORITIES` (comma-separated, one per
    /// model in the runner's order); 0 for slots it does not name. An experiment knob: where the
    /// kernels of several models share SMs, the higher-priority stream's blocks are dispatched first.
    private let streamPriorities: [Int32]

    init(context: CUDAContext) {
        self.context = context
        streamPriorities = (ProcessInfo.processInfo.environment["LLMUX_STREAM_PRIORITIES"] ?? "")
            .split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    private func priority(ofSlot slot: Int) -> Int32 { slot < streamPriorities.count ? streamPriorities[slot] : 0 }

    /// Replaces the partitionings with `requested` (SM counts per partition), each partition
    /// with `streamsPerPartition` streams. Returns the counts granted.
    func configure(_ requested: [[Int]], streamsPerPartition: Int) throws -> [[Int]] {
        try context.makeCurrent()
        try destroyAll()
        let driver = context.driver
        var made: [[SMPartition]] = []
        for (index, counts) in requested.enumerated() {
            if index == 0 || counts.count <= 1 {
                // The whole device: plain streams of the primary context.
                var streams: [StreamSlot] = []
                for slot in 0..<streamsPerPartition {
                    var stream: OpaquePointer?
                    try driver.check(driver.cuStreamCreateWithPriority(&stream, 1, priority(ofSlot: slot)), "cuStreamCreateWithPriority")
                    streams.append(StreamSlot(stream: stream, key: nextKey))
                    nextKey += 1
                }
                made.append([SMPartition(smCount: context.multiprocessorCount, greenContext: nil, streams: streams)])
                continue
            }
            guard let green = driver.greenContexts else {
                throw CUDAError("SM partitions need green contexts (CUDA 12.4 or later); the driver \(driver.library.name) has none")
            }
            made.append(try split(counts, api: green, streamsPerPartition: streamsPerPartition))
        }
        partitionings = made
        context.partitionStreams = made.flatMap { $0.flatMap { $0.streams.map(\.stream) } }
        return made.map { $0.map(\.smCount) }
    }

    /// The stream slot for a job.
    func slot(partitioning: Int, partition: Int, stream: Int) throws -> StreamSlot {
        guard partitioning < partitionings.count, partition < partitionings[partitioning].count else {
            throw CUDAError("no SM partition \(partition) in partitioning \(partitioning) (\(partitionings.count) configured)")
        }
        let streams = partitionings[partitioning][partition].streams
        return streams[stream % streams.count]
    }

    /// Splits the device's SMs into groups of `counts` SMs, one after the other; a count larger
    /// than what is left takes all that is left. The driver cannot split the remainder of a split
    /// again, so the remainder becomes a green context first and its resource is split next
    /// (the way the driver documents); those holders live as long as the partitions.
    private func split(_ counts: [Int], api: GreenContextAPI, streamsPerPartition: Int) throws -> [SMPartition] {
        let driver = context.driver
        let bytes = GreenContextAPI.resourceBytes
        let remaining = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
        let group = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
        let rest = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
        defer { remaining.deallocate(); group.deallocate(); rest.deallocate() }
        for buffer in [remaining, group, rest] { buffer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        try driver.check(api.getDeviceResource(context.device, remaining, GreenContextAPI.smResourceType), "cuDeviceGetDevResource(SM)")
        func smCount(_ resource: UnsafeMutableRawPointer) -> Int {
            Int(resource.load(fromByteOffset: GreenContextAPI.smCountOffset, as: UInt32.self))
        }
        func greenContext(_ resource: UnsafeMutableRawPointer) throws -> OpaquePointer? {
            var descriptor: OpaquePointer?
            try driver.check(api.generateDescriptor(&descriptor, resource, 1), "cuDevResourceGenerateDesc")
            var green: OpaquePointer?
            // CU_GREEN_CTX_DEFAULT_STREAM = 1
            try driver.check(api.create(&green, descriptor, context.device, 1), "cuGreenCtxCreate(\(smCount(resource)) SMs)")
            return green
        }
        var partitions: [SMPartition] = []
        for (index, wanted) in counts.enumerated() {
            let left = smCount(remaining)
            guard left > 0 else { throw CUDAError("SM partitioning \(counts) asks for more than the \(context.multiprocessorCount) SMs") }
            let takesRest = index == counts.count - 1 || wanted >= left
            // Every partition is a split group, the last one too (all whole groups of 8 that are
            // left): a split's remainder is unstructured, and cuBLASLt kernels that launch thread
            // block clusters fail on it. The few SMs past the last group stay unused.
            let count = takesRest ? left / 8 * 8 : wanted
            guard count > 0 else { throw CUDAError("SM partitioning \(counts): fewer than 8 SMs left for partition \(index)") }
            var groups: UInt32 = 1
            try driver.check(api.splitByCount(group, &groups, remaining, rest, 0, UInt32(count)),
                             "cuDevSmResourceSplitByCount(\(count) of \(left) SMs)")
            let green = try greenContext(group)
            var streams: [StreamSlot] = []
            for slot in 0..<streamsPerPartition {
                var stream: OpaquePointer?
                // CU_STREAM_NON_BLOCKING = 1, required for green-context streams.
                try driver.check(api.createStream(&stream, green, 1, priority(ofSlot: slot)), "cuGreenCtxStreamCreate")
                streams.append(StreamSlot(stream: stream, key: nextKey, smCount: smCount(group)))
                nextKey += 1
            }
            partitions.append(SMPartition(smCount: smCount(group), greenContext: green, streams: streams))
            if takesRest { break }
            // The remainder, made splittable: a green context of its own, whose resource is split next.
            let holder = try greenContext(rest)
            holders.append(holder)
            remaining.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            try driver.check(api.getResource(holder, remaining, GreenContextAPI.smResourceType), "cuGreenCtxGetDevResource(SM)")
        }
        try context.makeCurrent()
        return partitions
    }

    /// Waits for every partition stream, then destroys streams and green contexts.
    func destroyAll() throws {
        let driver = context.driver
        for partitioning in partitionings {
            for partition in partitioning {
                for slot in partition.streams {
                    try driver.check(driver.cuStreamSynchronize(slot.stream), "cuStreamSynchronize")
                    _ = driver.cuStreamDestroy(slot.stream)
                }
                if let green = partition.greenContext { _ = driver.greenContexts?.destroy(green) }
            }
        }
        for holder in holders { _ = driver.greenContexts?.destroy(holder) }
        holders = []
        partitionings = []
        context.partitionStreams = []
    }

    deinit { try? destroyAll() }
}

extension CUDABackend: PartitionedBackend {
    /// Selects the main stream, waits for every stream, then replaces all green contexts and streams (at least one
    /// stream per partition); returns the SM counts the driver granted.
    public func configurePartitions(_ requested: [[Int]], streamsPerPartition: Int) throws -> [[Int]] {
        selectMainStream()
        try context.settleStaging()
        return try partitions.configure(requested, streamsPerPartition: max(1, streamsPerPartition))
    }

    /// Points the backend and the context at that slot's stream; `stream` wraps around the partition's streams.
    public func selectStream(partitioning: Int, partition: Int, stream: Int) throws {
        let slot = try partitions.slot(partitioning: partitioning, partition: partition, stream: stream)
        current = slot
        context.stream = slot.stream
    }

    /// Back to the primary context's main stream (the whole device).
    public func selectMainStream() {
        current = mainSlot
        context.stream = mainSlot.stream
    }

    /// The selected slot's key (0: the main stream); every partition stream has its own.
    public var selectedStreamKey: Int { current.key }

    /// Opens a hold on the staging ring: no fence is placed, so what later slices read is not reused meanwhile.
    public func beginSlicedLaunch() { context.holdStaging() }

    /// Closes the hold from `beginSlicedLaunch` (fences may be placed again).
    public func endSlicedLaunch() { context.releaseStaging() }
}

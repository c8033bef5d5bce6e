import Foundation

/// One GPU: its primary context, the stream work is queued on (the main stream, or a partition's
/// stream while the backend runs a job there), device allocations and the staging memory for
/// small uploads and read-backs. Every call's status is checked.
final class CUDAContext: @unchecked Sendable {
    let driver: CUDADriver
    let ordinal: Int32
    let device: Int32
    let name: String
    let computeCapability: Int
    let multiprocessorCount: Int
    private(set) var context: OpaquePointer?
    /// The stream that copies, launches and matrix products go to now.
    var stream: OpaquePointer?
    /// The stream made with the context (the default for `stream`).
    private(set) var mainStream: OpaquePointer?
    /// Streams of SM partitions that may read the staging ring (waited for before it wraps).
    var partitionStreams: [OpaquePointer?] = []

    /// Pinned host staging for uploads and the device ring it is copied into.
    private let ringBytes = 16 << 20
    private var hostStaging: UnsafeMutableRawPointer
    private var deviceRing: UInt64 = 0
    /// Where the ring is reused from, and which of its bytes are consumed when (`StagingFences`).
    private var ring = StagingFences()
    private let fenceEvents: EventPool
    /// `LLMUX_RING_FENCES=0`: no fences, so every lap of the ring waits for all streams (to compare).
    private let fencesEnabled = ProcessInfo.processInfo.environment["LLMUX_RING_FENCES"] != "0"
    /// Host time in allocations, frees, waits, launches and products (job traces).
    let stalls = HostStallMeter()

    init(ordinal: Int) throws {
        let driver: CUDADriver
        switch CUDADriver.shared {
        case .success(let opened): driver = opened
        case .failure(let error): throw error
        }
        self.driver = driver
        self.fenceEvents = EventPool(driver: driver)
        self.ordinal = Int32(ordinal)
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0 && Int32(ordinal) < count else {
            throw CUDAError("cuda:\(ordinal) does not exist: the driver sees \(count) device(s)")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        self.device = device
        var nameBytes = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBytes, 255, device), "cuDeviceGetName")
        name = String(decoding: nameBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ attribute: CUDADriver.Attribute) throws -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, attribute.rawValue, device), "cuDeviceGetAttribute(\(attribute))")
            return Int(value)
        }
        computeCapability = try attribute(.computeCapabilityMajor) * 10 + attribute(.computeCapabilityMinor)
        multiprocessorCount = try attribute(.multiprocessorCount)
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var stream: OpaquePointer?
        try driver.check(driver.cuStreamCreate(&stream, 1), "cuStreamCreate")
        self.stream = stream
        self.mainStream = stream
        var staging: UnsafeMutableRawPointer?
        try driver.check(driver.cuMemAllocHost(&staging, ringBytes), "cuMemAllocHost(\(ringBytes))")
        hostStaging = staging!
        try driver.check(driver.cuMemAlloc(&deviceRing, ringBytes), "cuMemAlloc(\(ringBytes)) for the upload ring")
    }

    /// Makes this GPU's context current on the calling thread.
    func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Free and total device memory in bytes.
    func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    /// `byteCount` bytes of device memory, freed when the buffer goes away. Out of memory is a
    /// `CUDAError` naming the size and what is free.
    func allocate(_ byteCount: Int) throws -> DeviceBuffer {
        var address: UInt64 = 0
        let status = stalls.measure(.allocate) { driver.cuMemAlloc(&address, max(byteCount, 256)) }
        if status == 2 { // CUDA_ERROR_OUT_OF_MEMORY
            let free = (try? memoryInfo().free) ?? 0
            throw CUDAError(String(format: "cuMemAlloc(%.2f GiB) failed: CUDA_ERROR_OUT_OF_MEMORY (%.2f GiB free on %@)",
                                   Double(byteCount) / 1.0737e9, Double(free) / 1.0737e9, name))
        }
        try driver.check(status, "cuMemAlloc(\(byteCount))")
        let freeing = self.driver, stalls = self.stalls
        return DeviceBuffer(deviceAddress: address, byteCount: byteCount) { pointer in
            _ = stalls.measure(.free) { freeing.cuMemFree(UInt64(UInt(bitPattern: pointer))) }
        }
    }

    /// Zeroes `byteCount` bytes at `address` (stream-ordered).
    func zero(_ address: UInt64, byteCount: Int) throws {
        try driver.check(driver.cuMemsetD8Async(address, 0, byteCount, stream), "cuMemsetD8Async")
    }

    /// Copies host bytes to the device and waits.
    func copyToDevice(_ destination: UInt64, from source: UnsafeRawPointer, byteCount: Int) throws {
        try driver.check(driver.cuMemcpyHtoD(destination, source, byteCount), "cuMemcpyHtoD(\(byteCount))")
    }

    /// Stream-ordered copy of small host data through the pinned ring; the returned buffer is
    /// valid for the work queued by the current job (the ring holds 16 MiB and is reused a lap
    /// later, once that work is done: `reserveRing`).
    func stage(_ source: UnsafeRawBufferPointer) throws -> DeviceBuffer {
        let bytes = (max(source.count, 4) + 255) & ~255
        guard bytes <= ringBytes / 4, let offset = try reserveRing(bytes) else { return try stageOutsideRing(source) }
        if source.count > 0 { (hostStaging + offset).copyMemory(from: source.baseAddress!, byteCount: source.count) }
        let destination = deviceRing + UInt64(offset)
        try driver.check(driver.cuMemcpyHtoDAsync(destination, hostStaging + offset, bytes, stream), "cuMemcpyHtoDAsync(\(bytes))")
        return DeviceBuffer(deviceAddress: destination, byteCount: bytes, owner: self, release: nil)
    }

    /// Stream-ordered copy of small host data to `destination` through the pinned ring.
    func upload(_ source: UnsafeRawBufferPointer, to destination: UInt64) throws {
        guard source.count > 0 else { return }
        let bytes = (source.count + 255) & ~255
        guard bytes <= ringBytes / 4, let offset = try reserveRing(bytes) else {
            // A synchronous copy: the stream's queued work may still read the destination.
            try synchronize()
            return try copyToDevice(destination, from: source.baseAddress!, byteCount: source.count)
        }
        (hostStaging + offset).copyMemory(from: source.baseAddress!, byteCount: source.count)
        try driver.check(driver.cuMemcpyHtoDAsync(destination, hostStaging + offset, source.count, stream),
                         "cuMemcpyHtoDAsync(\(source.count))")
    }

    /// A buffer of its own for data too large for the ring, or staged while the ring cannot be
    /// reused (a held launch's bytes are in the way).
    private func stageOutsideRing(_ source: UnsafeRawBufferPointer) throws -> DeviceBuffer {
        let buffer = try allocate(source.count)
        try synchronize()
        try copyToDevice(buffer.deviceAddress, from: source.baseAddress!, byteCount: source.count)
        return buffer
    }

    /// A launch spread over several calls begins on the current stream: what it stages stays
    /// valid until `releaseStaging` (no fence is placed meanwhile, see `StagingFences.hold`).
    func holdStaging() { ring.hold() }

    /// The held launch has queued its last kernel.
    func releaseStaging() { ring.release() }

    /// The ring offset of `bytes` fresh bytes for the current stream (nil: a held launch is in
    /// the way, see `StagingFences.reserve`). Bytes staged one lap earlier are reused only once
    /// the work that read them is done: when fences cover them (`fenceStaging`, one per job) it
    /// waits for those events, which jobs of hundreds of steps ago have long passed, so a lap
    /// costs nothing; bytes no fence covers (an engine that does not fence) need every stream
    /// idle, as before fences.
    private func reserveRing(_ bytes: Int) throws -> Int? {
        try ring.reserve(bytes, ringBytes: ringBytes, stream: stream, waitForFence: { events in
            try stalls.measure(.wait) {
                for event in events { try driver.check(driver.cuEventSynchronize(event), "cuEventSynchronize") }
            }
        }, waitForAll: synchronizeAllStreams, recycle: { $0.forEach(fenceEvents.give) })
    }

    /// Waits for every stream and forgets the ring's fences and unfenced streams (before streams
    /// are destroyed: a later fence must not record an event on one of them).
    func settleStaging() throws {
        precondition(ring.holds == 0, "settleStaging during a sliced launch")
        try synchronizeAllStreams()
        ring.markAllConsumed().forEach(fenceEvents.give)
    }

    /// Marks the bytes staged since the last fence as consumed once the work queued so far on the
    /// streams that staged them ends (called after a job's last launch, which is the last use of
    /// what the job staged).
    func fenceStaging() throws {
        guard fencesEnabled, ring.canFence else { return }
        var recorded: [OpaquePointer?] = []
        for each in ring.unfencedStreams {
            let event = try fenceEvents.take()
            try driver.check(driver.cuEventRecord(event, each), "cuEventRecord")
            recorded.append(event)
        }
        ring.fence(with: recorded)
    }

    /// Copies device bytes to host memory and waits.
    func copyToHost(_ destination: UnsafeMutableRawPointer, from source: UInt64, byteCount: Int) throws {
        try driver.check(driver.cuMemcpyDtoHAsync(destination, source, byteCount, stream), "cuMemcpyDtoHAsync(\(byteCount))")
        try synchronize()
    }

    /// Device-to-device copy on the stream.
    func copy(_ destination: UInt64, from source: UInt64, byteCount: Int) throws {
        try driver.check(driver.cuMemcpyDtoDAsync(destination, source, byteCount, stream), "cuMemcpyDtoDAsync(\(byteCount))")
    }

    /// Waits for everything queued on the stream.
    func synchronize() throws {
        try stalls.measure(.wait) { try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize") }
    }

    /// Waits for the main stream and every partition stream (the staging ring is reused after this).
    func synchronizeAllStreams() throws {
        try stalls.measure(.wait) {
            for each in [mainStream] + partitionStreams {
                try driver.check(driver.cuStreamSynchronize(each), "cuStreamSynchronize")
            }
        }
    }
}

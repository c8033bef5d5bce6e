import Foundation
import CGatewayLoop
import Collections
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// Something in a loop's epoll set: a socket, a listener or the loop's wake-up descriptor.
/// The epoll entry carries the object's address, so an event needs no lookup.
class EpollTarget {
    /// Called on the loop's thread with the event's bits (`EPOLLIN`, `EPOLLOUT`, …).
    func ready(_ events: UInt32) {}
}

/// A connection that closes when the gateway drains (`GatewayLoop.beginDrain`).
protocol Drainable: AnyObject {
    /// Closes now if idle, else once the answer in progress is sent.
    func drain()
}

/// A callback scheduled on a loop; cancelling drops the callback (and what it holds).
final class LoopTimer {
    fileprivate var callback: (() -> Void)?
    init(_ callback: @escaping () -> Void) { self.callback = callback }
    /// Stops the callback from running; a no-op once it has run.
    func cancel() { callback = nil }
}

/// A value handed to a closure that runs on the loop the value belongs to (`GatewayLoop.execute`
/// from a task, say). The loop is the only thread that touches it, hence the unchecked Sendable.
struct LoopBound<Value>: @unchecked Sendable {
    let value: Value
}

/// One thread of the gateway's data path: an epoll set of client and upstream sockets, its
/// timers, and the upstream connections kept alive on it.
///
/// The gateway forwards on plain epoll instead of SwiftNIO's channels because on the 2-core
/// bench machine its added latency was CPU per event: a C relay doing no HTTP work added
/// 0.045 ms at 256 streams, the NIO gateway 0.12 ms beyond that, and `perf` put the difference
/// in the channel pipeline (`swift_retain` alone 18 % of user cycles; docs/BENCHMARKS.md,
/// Gateway r15). Here a chunk costs a `read`, a copy into a `ByteBuffer` of its size, the
/// framing scan and a `send`, as in nginx. A request, its client connection and its upstream
/// connection live on one loop, so nothing is locked or handed between threads on the way.
final class GatewayLoop: @unchecked Sendable {
    /// Allocates the buffers that carry bytes through the gateway.
    static let allocator = ByteBufferAllocator()
    /// Bytes one `read` takes at most.
    static let readBytes = 1 << 16

    /// The loop's number, for its thread's name.
    let index: Int
    private let epollFD: Int32
    private let wake: WakeTarget
    /// Closures from other threads (`execute`), run on the loop's next wake-up.
    private let inbox = NIOLockedValueBox<[@Sendable () -> Void]>([])
    /// Closures from the loop itself, run once the current event is handled (so that a close
    /// reaches its delegate after the code that closed has returned).
    private var deferred: [() -> Void] = []
    private var timers = TimerHeap()
    /// Sockets open on this loop; a closed one stays in `retired` until the batch of events
    /// it was closed in is done, as later events in the batch still point at it.
    private var live: [ObjectIdentifier: EpollTarget] = [:]
    private var retired: [EpollTarget] = []
    private var stopping = false
    private let exited = DispatchSemaphore(value: 0)
    /// The buffer every `read` on this loop goes into; the bytes are then copied into a
    /// `ByteBuffer` of their own size (a chunk is a few hundred bytes).
    let readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: GatewayLoop.readBytes, alignment: 16)
    /// Upstream connections idle on this loop, by `Upstream` (see `UpstreamPool`).
    var idleUpstreams: [ObjectIdentifier: [UpstreamPool.Connection]] = [:]
    /// Run on the loop when it stops, before its sockets close: the front closes its listener here.
    var onStop: [() -> Void] = []
    /// Connections told when the gateway starts draining (client connections, which then
    /// close once idle), by identity.
    var drainables: [ObjectIdentifier: any Drainable] = [:]
    /// The gateway is draining: no new connections, and client connections close once idle.
    private(set) var draining = false

    /// Starts draining: every client connection on this loop closes now if idle, else after
    /// its answer in progress.
    func beginDrain() {
        draining = true
        for connection in Array(drainables.values) { connection.drain() }
        runDeferred()
    }

    /// A loop with its epoll set and wake-up descriptor; `start` runs it on a thread.
    init(index: Int) throws {
        self.index = index
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else { throw IOError(errnoCode: errno, reason: "eventfd") }
        wake = WakeTarget(fd: wakeFD)
        wake.loop = self
        register(wake, fd: wakeFD, events: LLMUX_EPOLLIN)
    }

    deinit {
        readScratch.deallocate()
        Glibc.close(wake.fd)
        Glibc.close(epollFD)
    }

    /// Runs the loop on a thread of its own until `stop`.
    func start() {
        let thread = Thread { [self] in
            llmux_name_thread("llmux-gw-\(index)")
            run()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Runs `task` on the loop's thread (from any thread).
    func execute(_ task: @escaping @Sendable () -> Void) {
        let first = inbox.withLockedValue { queue in
            queue.append(task)
            return queue.count == 1
        }
        if first { wake.signal() }
    }

    /// Runs `task` on the loop once the current event has been handled (loop thread only).
    func later(_ task: @escaping () -> Void) { deferred.append(task) }

    /// Runs `callback` on the loop at `deadline` unless cancelled first (loop thread only).
    @discardableResult
    func schedule(at deadline: NIODeadline, _ callback: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(callback)
        timers.push(deadline: deadline.uptimeNanoseconds, timer)
        return timer
    }

    /// Runs `callback` on the loop after `delay` unless cancelled first (loop thread only).
    @discardableResult
    func schedule(in delay: TimeAmount, _ callback: @escaping () -> Void) -> LoopTimer {
        schedule(at: .now() + delay, callback)
    }

    /// Stops the loop: `onStop` runs, every socket on it closes, its thread ends. Waits for that.
    func stop() async {
        execute { [self] in stopping = true }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [exited] in
                exited.wait()
                done.resume()
            }
        }
    }

    // MARK: the epoll set

    /// Adds `target` for `events` and keeps it alive until `retire`; false (errno set) when
    /// epoll refused it (out of memory or of `max_user_watches`).
    @discardableResult
    func register(_ target: EpollTarget, fd: Int32, events: UInt32) -> Bool {
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(target).toOpaque()))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        if !(target is WakeTarget) { live[ObjectIdentifier(target)] = target }
        return true
    }

    /// Changes the events `target` is watched for.
    func modify(_ target: EpollTarget, fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(target).toOpaque()))
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// `target`'s descriptor was closed (which takes it out of the epoll set): it is dropped
    /// once the current batch of events is done.
    func retire(_ target: EpollTarget) {
        if let kept = live.removeValue(forKey: ObjectIdentifier(target)) { retired.append(kept) }
    }

    // MARK: the loop

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while !stopping {
            let count = epoll_wait(epollFD, events, Int32(capacity), timeoutMilliseconds())
            if count < 0 && errno != EINTR { break }
            for i in 0..<Int(max(count, 0)) {
                let target = Unmanaged<EpollTarget>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(events[i].data.u64))!).takeUnretainedValue()
                target.ready(events[i].events)
                runDeferred()
            }
            fireTimers()
            retired.removeAll(keepingCapacity: true)
        }
        for task in onStop { task() }
        onStop = []
        for target in Array(live.values) {
            (target as? LoopSocket)?.close(error: nil)
        }
        runDeferred()
        idleUpstreams = [:]
        live = [:]
        retired = []
        timers = TimerHeap()
        exited.signal()
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let tasks = deferred
            deferred.removeAll(keepingCapacity: true)
            for task in tasks { task() }
        }
    }

    fileprivate func drainInbox() {
        let tasks = inbox.withLockedValue { queue in
            let taken = queue
            queue.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks {
            task()
            runDeferred()
        }
    }

    /// Until the next timer, rounded up to a millisecond (epoll's unit); -1 with none.
    private func timeoutMilliseconds() -> Int32 {
        if !deferred.isEmpty { return 0 }
        guard let next = timers.nextDeadline else { return -1 }
        let now = NIODeadline.now().uptimeNanoseconds
        guard next > now else { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, 60_000))
    }

    private func fireTimers() {
        guard timers.nextDeadline != nil else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        while let timer = timers.popDue(now: now) {
            if let callback = timer.callback {
                timer.callback = nil
                callback()
                runDeferred()
            }
        }
    }
}

/// The loop's eventfd: written by `execute` from other threads, read on the loop.
private final class WakeTarget: EpollTarget {
    let fd: Int32
    unowned(unsafe) var loop: GatewayLoop?

    init(fd: Int32) { self.fd = fd }

    func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    override func ready(_ events: UInt32) {
        var count: UInt64 = 0
        _ = Glibc.read(fd, &count, 8)
        loop?.drainInbox()
    }
}

/// A timer in the loop's heap: ordered by deadline, then by when it was scheduled.
private struct TimerEntry: Comparable {
    let deadline: UInt64
    let order: UInt64
    let timer: LoopTimer

    static func < (a: TimerEntry, b: TimerEntry) -> Bool { (a.deadline, a.order) < (b.deadline, b.order) }
    static func == (a: TimerEntry, b: TimerEntry) -> Bool { a.deadline == b.deadline && a.order == b.order }
}

/// The loop's timers by deadline (ties in scheduling order), on swift-collections' `Heap`.
/// Cancelled timers stay until they come due, which costs nothing but their slot.
private struct TimerHeap {
    private var entries = Heap<TimerEntry>()
    private var scheduled: UInt64 = 0

    var nextDeadline: UInt64? { entries.min?.deadline }

    mutating func push(deadline: UInt64, _ timer: LoopTimer) {
        scheduled += 1
        entries.insert(TimerEntry(deadline: deadline, order: scheduled, timer: timer))
    }

    mutating func popDue(now: UInt64) -> LoopTimer? {
        guard let first = entries.min, first.deadline <= now else { return nil }
        return entries.removeMin().timer
    }
}

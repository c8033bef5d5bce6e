import CGatewayLoop
import Glibc
import NIOCore

/// What a socket tells its owner. Every call is on the socket's loop.
protocol LoopSocketDelegate: AnyObject {
    /// Bytes read, in a buffer of their own.
    func socketRead(_ bytes: ByteBuffer)
    /// The end of one readiness event's reads: the moment to flush what they produced.
    func socketReadComplete()
    /// The socket closed: `nil` for an orderly close (ours, or the peer's end of stream),
    /// else the error that closed it. Called once, after the code that closed it has returned.
    func socketClosed(error: (any Error)?)
}

/// A connect to an upstream took longer than `connect_timeout_ms`.
struct UpstreamConnectTimeout: Error, CustomStringConvertible {
    var description: String { "connect timed out" }
}

/// A non-blocking TCP socket on one `GatewayLoop`: reads as they come, writes queued and sent on
/// `flush`, with `EPOLLOUT` watched only while the kernel's buffer is full. Level-triggered, so
/// a socket whose reads are paused simply is not watched for `EPOLLIN`.
final class LoopSocket: EpollTarget {
    let fd: Int32
    /// Its loop; the loop holds the socket too until it closes (every socket is closed when
    /// the loop stops), so the cycle does not outlive it.
    let loop: GatewayLoop
    /// Receives reads and the close; cleared at the close (it usually holds the socket).
    var delegate: (any LoopSocketDelegate)?
    /// False once closed.
    private(set) var isActive = true
    /// Bytes written and not yet taken by the kernel.
    private(set) var outboundBytes = 0
    /// Called once queued bytes have all gone out after a send had found the kernel's buffer
    /// full (the moment to read again from what feeds this socket).
    var onDrained: (() -> Void)?
    private var outbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Watched for reads (false while paused).
    private(set) var reading = true
    private var watchingWritable = false
    private var closeWhenFlushed = false
    /// Set while a connect is in progress: told of its end.
    private var connecting: ((Result<LoopSocket, any Error>) -> Void)?
    private var connectTimer: LoopTimer?

    /// Wraps an open non-blocking descriptor and adds it to `loop`'s epoll set for reading.
    init(fd: Int32, loop: GatewayLoop, watchWritable: Bool = false) {
        self.fd = fd
        self.loop = loop
        super.init()
        watchingWritable = watchWritable
        if !loop.register(self, fd: fd, events: interest) {
            close(error: IOError(errnoCode: errno, reason: "epoll_ctl"))
        }
    }

    private var interest: UInt32 {
        (reading ? LLMUX_EPOLLIN : 0) | (watchingWritable ? LLMUX_EPOLLOUT : 0)
    }

    /// Opens a connection to the first of `addresses` that accepts it, each within `timeout`;
    /// `done` is called on `loop` with the connected socket or the last error.
    static func connect(to addresses: ArraySlice<ResolvedAddress>, on loop: GatewayLoop, timeout: TimeAmount,
                        _ done: @escaping (Result<LoopSocket, any Error>) -> Void) {
        guard let address = addresses.first else {
            return loop.later { done(.failure(IOError(errnoCode: EADDRNOTAVAIL, reason: "connect"))) }
        }
        let rest = addresses.dropFirst()
        let next: (Result<LoopSocket, any Error>) -> Void = { result in
            if case .failure = result, !rest.isEmpty {
                connect(to: rest, on: loop, timeout: timeout, done)
            } else {
                done(result)
            }
        }
        let fd = openStreamSocket(family: address.family)
        guard fd >= 0 else {
            let code = errno
            return loop.later { next(.failure(IOError(errnoCode: code, reason: "socket"))) }
        }
        setNoDelay(fd)
        let result = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if result == 0 {
            let socket = LoopSocket(fd: fd, loop: loop)
            return loop.later {
                next(socket.isActive ? .success(socket) : .failure(IOError(errnoCode: ENOMEM, reason: "epoll_ctl")))
            }
        }
        let code = errno
        guard code == EINPROGRESS else {
            Glibc.close(fd)
            return loop.later { next(.failure(IOError(errnoCode: code, reason: "connect"))) }
        }
        let socket = LoopSocket(fd: fd, loop: loop, watchWritable: true)
        guard socket.isActive else {
            return loop.later { next(.failure(IOError(errnoCode: ENOMEM, reason: "epoll_ctl"))) }
        }
        socket.connecting = next
        socket.connectTimer = loop.schedule(in: timeout) { [weak socket] in
            socket?.close(error: UpstreamConnectTimeout())
        }
    }

    /// A new non-blocking, close-on-exec TCP socket of `family`; -1 and errno on failure.
    static func openStreamSocket(family: Int32) -> Int32 {
        socket(family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    override func ready(_ events: UInt32) {
        guard isActive else { return }
        if connecting != nil { return finishConnect() }
        if events & LLMUX_EPOLLOUT != 0 { writeOut() }
        guard isActive else { return }
        if events & (LLMUX_EPOLLIN | LLMUX_EPOLLHUP | LLMUX_EPOLLERR) != 0 {
            if reading {
                readIn()
            } else if events & (LLMUX_EPOLLHUP | LLMUX_EPOLLERR) != 0 {
                // Not reading, but the connection is gone: level-triggered, it would come back.
                close(error: socketError() ?? IOError(errnoCode: ECONNRESET, reason: "hang-up"))
            }
        }
    }

    private func finishConnect() {
        if let error = socketError() { return close(error: error) }
        let done = connecting
        connecting = nil
        connectTimer?.cancel()
        connectTimer = nil
        watchingWritable = false
        loop.modify(self, fd: fd, events: interest)
        done?(.success(self))
    }

    private func socketError() -> IOError? {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return IOError(errnoCode: errno, reason: "getsockopt") }
        return code == 0 ? nil : IOError(errnoCode: code, reason: connecting != nil ? "connect" : "socket")
    }

    /// Reads until the kernel has no more (at most four reads an event, so one busy socket
    /// cannot starve the others), handing each read's bytes to the delegate.
    private func readIn() {
        let scratch = loop.readScratch
        for _ in 0..<4 {
            let count = Glibc.read(fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                var bytes = GatewayLoop.allocator.buffer(capacity: count)
                bytes.writeBytes(UnsafeRawBufferPointer(start: scratch.baseAddress, count: count))
                delegate?.socketRead(bytes)
                guard isActive, reading, count == scratch.count else { break }
            } else if count == 0 {
                return close(error: nil)
            } else {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { break }
                return close(error: IOError(errnoCode: code, reason: "read"))
            }
        }
        if isActive { delegate?.socketReadComplete() }
    }

    /// Stops watching for reads (pipelined requests waiting, say) until `resumeReading`.
    func pauseReading() {
        guard reading, isActive else { return }
        reading = false
        loop.modify(self, fd: fd, events: interest)
    }

    /// Watches for reads again.
    func resumeReading() {
        guard !reading, isActive else { return }
        reading = true
        loop.modify(self, fd: fd, events: interest)
    }

    /// Queues bytes; they go out at the next `flush`.
    func write(_ bytes: ByteBuffer) {
        guard isActive, bytes.readableBytes > 0 else { return }
        outbound.append(bytes)
        outboundBytes += bytes.readableBytes
    }

    /// Sends what is queued, as far as the kernel takes it; the rest goes when it can.
    func flush() {
        guard isActive, !watchingWritable, connecting == nil else { return }
        writeOut()
    }

    /// Closes once everything queued is sent.
    func closeAfterFlush() {
        guard isActive else { return }
        closeWhenFlushed = true
        if outbound.isEmpty { close(error: nil) } else { flush() }
    }

    private func writeOut() {
        // Small writes queued together (a head and its first chunk, a chunk and the last one)
        // go out in one send.
        if outbound.count > 1 && outboundBytes <= 1 << 16 {
            var merged = GatewayLoop.allocator.buffer(capacity: outboundBytes)
            for bytes in outbound { merged.writeImmutableBuffer(bytes) }
            outbound.removeAll(keepingCapacity: true)
            outbound.append(merged)
        }
        while let first = outbound.first {
            let sent = first.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent >= 0 {
                outboundBytes -= sent
                if sent == first.readableBytes {
                    outbound.removeFirst()
                } else {
                    outbound[outbound.startIndex].moveReaderIndex(forwardBy: sent)
                    return watchWritable(true)
                }
            } else {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return watchWritable(true) }
                return close(error: IOError(errnoCode: code, reason: "write"))
            }
        }
        let wasWaiting = watchingWritable
        watchWritable(false)
        if closeWhenFlushed { return close(error: nil) }
        if wasWaiting, let onDrained {
            self.onDrained = nil
            onDrained()
        }
    }

    private func watchWritable(_ on: Bool) {
        guard watchingWritable != on, isActive else { return }
        watchingWritable = on
        loop.modify(self, fd: fd, events: interest)
    }

    /// Closes the descriptor now; the delegate hears of it once the caller has returned.
    func close(error: (any Error)?) {
        guard isActive else { return }
        isActive = false
        Glibc.close(fd)
        outbound.removeAll()
        outboundBytes = 0
        connectTimer?.cancel()
        connectTimer = nil
        onDrained = nil
        loop.retire(self)
        let connecting = self.connecting
        self.connecting = nil
        loop.later { [self] in
            connecting?(.failure(error ?? IOError(errnoCode: ECONNABORTED, reason: "connect")))
            let delegate = self.delegate
            self.delegate = nil
            delegate?.socketClosed(error: error)
        }
    }
}

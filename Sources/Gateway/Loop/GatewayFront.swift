import CGatewayLoop
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// The gateway's data path, running: its loops and its listening socket.
public final class GatewayFront: Sendable {
    /// The port it listens on (the one the system chose when the configuration said 0).
    public let port: Int
    let loops: [GatewayLoop]
    private let listenerLoop: GatewayLoop
    private let stopped = NIOLockedValueBox(false)

    fileprivate init(port: Int, loops: [GatewayLoop]) {
        self.port = port
        self.loops = loops
        listenerLoop = loops[0]
    }

    /// Stops accepting connections and starts draining, as nginx's graceful shutdown does:
    /// idle client connections close now, busy ones once their answer in progress is sent
    /// (with `connection: close` when its head is still to go).
    public func stopAccepting() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            listenerLoop.execute { [listenerLoop] in
                for task in listenerLoop.onStop { task() }
                listenerLoop.onStop = []
                done.resume()
            }
        }
        for loop in loops {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                loop.execute {
                    loop.beginDrain()
                    done.resume()
                }
            }
        }
    }

    /// Closes every connection and ends the loops' threads.
    public func shutdown() async {
        guard stopped.withLockedValue({ was in defer { was = true }; return !was }) else { return }
        for loop in loops { await loop.stop() }
    }
}

/// Starts the gateway's data path.
public enum ProxyServer {
    /// Listens on the configured host and port and starts `configuration.resolvedEventLoops`
    /// loops. The listener is on the first loop, and accepted connections are dealt to the loops
    /// in turn, as NIO's server bootstrap does: accepts are rare (clients keep connections alive),
    /// and dealing them keeps the loops' shares even, where `SO_REUSEPORT`'s hashing can leave
    /// one loop with more of a few hundred connections, and would let a second process bind the
    /// same port unnoticed.
    public static func start(state: GatewayState) throws -> GatewayFront {
        let configuration = state.configuration
        let listenFD = try listen(host: configuration.host, port: configuration.port)
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFD, $0, &length) }
        }
        let port: Int = withUnsafeBytes(of: address) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            Int(UInt16(raw[2]) << 8 | UInt16(raw[3]))
        }
        let loops: [GatewayLoop]
        do {
            loops = try (0..<configuration.resolvedEventLoops).map { try GatewayLoop(index: $0) }
        } catch {
            Glibc.close(listenFD)
            throw error
        }
        for loop in loops { loop.start() }
        let front = GatewayFront(port: port, loops: loops)
        let first = loops[0]
        first.execute {
            let listener = LoopListener(fd: listenFD, loop: first) { fd, turn in
                let loop = loops[turn % loops.count]
                let accepted: @Sendable () -> Void = {
                    let socket = LoopSocket(fd: fd, loop: loop)
                    let handler = GatewayConnectionHandler(state: state, socket: socket)
                    socket.delegate = handler
                }
                if loop === first { accepted() } else { loop.execute(accepted) }
            }
            first.onStop.append { listener.close() }
        }
        return front
    }

    /// A listening socket on the first address of `host` that binds.
    private static func listen(host: String, port: Int) throws -> Int32 {
        var lastError: any Error = AddressError(description: "no address for \(host)")
        for address in try ResolvedAddress.resolve(host: host, port: port, passive: true) {
            let fd = LoopSocket.openStreamSocket(family: address.family)
            guard fd >= 0 else {
                lastError = IOError(errnoCode: errno, reason: "socket")
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if address.withSockAddr({ bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 4096) == 0 {
                return fd
            }
            lastError = ListenError(host: host, port: port, errnoCode: errno)
            Glibc.close(fd)
        }
        throw lastError
    }
}

/// The gateway could not listen on its address: says which, why, and what to do.
struct ListenError: Error, CustomStringConvertible {
    let host: String
    let port: Int
    let errnoCode: Int32

    var description: String {
        let reason = String(cString: strerror(errnoCode))
        let advice = errnoCode == EADDRINUSE ? " Choose another --port (or `port:` in the configuration), or stop the process that holds it."
            : errnoCode == EACCES ? " Ports below 1024 need privileges: choose a port of 1024 or more." : ""
        return "cannot listen on \(host):\(port): \(reason).\(advice)"
    }
}

/// The listening socket: accepts every pending connection on each readiness event.
final class LoopListener: EpollTarget {
    let fd: Int32
    let loop: GatewayLoop
    /// Given each accepted descriptor (non-blocking, no-delay) and how many came before it.
    private let accepted: (Int32, Int) -> Void
    private var count = 0
    private var open = true

    init(fd: Int32, loop: GatewayLoop, accepted: @escaping (Int32, Int) -> Void) {
        self.fd = fd
        self.loop = loop
        self.accepted = accepted
        super.init()
        loop.register(self, fd: fd, events: LLMUX_EPOLLIN)
    }

    override func ready(_ events: UInt32) {
        guard open else { return }
        for _ in 0..<64 {
            let client = llmux_accept_nonblocking(fd)
            if client >= 0 {
                LoopSocket.setNoDelay(client)
                accepted(client, count)
                count += 1
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors: level-triggered, the listener would wake the loop at
                // once again. Stop watching it for a while; the backlog holds the clients.
                loop.modify(self, fd: fd, events: 0)
                loop.schedule(in: .milliseconds(100)) { [self] in
                    if open { loop.modify(self, fd: fd, events: LLMUX_EPOLLIN) }
                }
                return
            default:
                return
            }
        }
    }

    /// Stops listening.
    func close() {
        guard open else { return }
        open = false
        Glibc.close(fd)
        loop.retire(self)
    }
}

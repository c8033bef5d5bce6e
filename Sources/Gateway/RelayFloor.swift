import CRelayFloor
import Foundation

/// The floor of what any proxy adds, for `llmux bench gateway`: a TCP relay that does no HTTP
/// work at all (`Sources/CRelayFloor`, C on epoll). Each client connection gets its own
/// upstream connection, and every byte read on one is written to the other, so a request and
/// each of its chunks cross the relay with one `epoll_wait`, one `read` and one `write`: the
/// least an HTTP proxy needs, which must also parse, route and pool. What a proxy adds beyond
/// this relay is its own cost; the relay's own figure is what the machine charges for one more
/// loopback hop each way. It runs one thread per core, each with its own `SO_REUSEPORT`
/// listener, as nginx runs one worker per core.
public enum RelayFloor {
    /// The relay could not start.
    public struct Failure: Error, CustomStringConvertible {
        /// What failed, with `errno`'s text.
        public let description: String
    }

    /// Starts relaying `127.0.0.1:port` (0: any free port) to `127.0.0.1:upstreamPort` on
    /// `threads` threads, and returns the port bound. The threads run until the process ends.
    public static func start(port: Int, upstreamPort: Int, threads: Int) throws -> Int {
        func check(_ status: Int32, _ what: String) throws -> Int32 {
            guard status >= 0 else { throw Failure(description: "relay floor: \(what): \(String(cString: strerror(-status)))") }
            return status
        }
        let first = try check(llmux_relay_floor_listen(Int32(port)), "listen on 127.0.0.1:\(port)")
        let bound = Int(try check(llmux_relay_floor_port(first), "read the bound port"))
        var listeners = [first]
        // The others share the first one's port, so the kernel spreads connections over them.
        for _ in 1..<max(1, threads) { listeners.append(try check(llmux_relay_floor_listen(Int32(bound)), "listen on 127.0.0.1:\(bound)")) }
        for listener in listeners { _ = try check(llmux_relay_floor_start(listener, Int32(upstreamPort)), "start a thread") }
        return bound
    }

    /// `start`, then prints the address and serves until the process is stopped.
    public static func run(port: Int, upstreamPort: Int, threads: Int) async throws -> Never {
        let bound = try start(port: port, upstreamPort: upstreamPort, threads: threads)
        FileHandle.standardOutput.write(Data("LLMux relay floor listening on http://127.0.0.1:\(bound) (to 127.0.0.1:\(upstreamPort))\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

import Foundation
@testable import Gateway
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// The gateway's own event loop, below HTTP: timers, queued writes against a slow reader,
/// paused reads, and a peer that leaves while reads are paused.
@Suite(.timeLimit(.minutes(1))) struct GatewayLoopTests {
    /// Collects what a socket reports, for the test thread to read.
    final class Recorder: LoopSocketDelegate, @unchecked Sendable {
        let received = NIOLockedValueBox<[UInt8]>([])
        let closed = NIOLockedValueBox<String?>(nil)
        func socketRead(_ bytes: ByteBuffer) { received.withLockedValue { $0 += bytes.readableBytesView } }
        func socketReadComplete() {}
        func socketClosed(error: (any Error)?) { closed.withLockedValue { $0 = error.map { "\($0)" } ?? "eof" } }
    }

    /// Two connected non-blocking stream sockets.
    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let result = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0, &fds)
        precondition(result == 0)
        return (fds[0], fds[1])
    }

    /// Runs `body` on `loop` and waits for it.
    func onLoop<T: Sendable>(_ loop: GatewayLoop, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { done in loop.execute { done.resume(returning: body()) } }
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() async throws {
        let loop = try GatewayLoop(index: 0)
        loop.start()
        let fired = NIOLockedValueBox<[Int]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                let now = NIODeadline.now()
                loop.schedule(at: now + .milliseconds(40)) {
                    fired.withLockedValue { $0.append(3) }
                    done.resume()
                }
                loop.schedule(at: now + .milliseconds(10)) { fired.withLockedValue { $0.append(1) } }
                let cancelled = loop.schedule(at: now + .milliseconds(20)) { fired.withLockedValue { $0.append(99) } }
                loop.schedule(at: now + .milliseconds(20)) { fired.withLockedValue { $0.append(2) } }
                cancelled.cancel()
            }
        }
        #expect(fired.withLockedValue { $0 } == [1, 2, 3])
        await loop.stop()
    }

    @Test func aLargeWriteReachesASlowReaderWholeThenTheCloseFollows() async throws {
        let loop = try GatewayLoop(index: 0)
        loop.start()
        let (mine, theirs) = socketPair()
        // 4 MiB is far past a socket's buffer: most of it waits for EPOLLOUT.
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let recorder = Recorder()
        await onLoop(loop) {
            let socket = LoopSocket(fd: mine, loop: loop)
            socket.delegate = recorder
            var bytes = GatewayLoop.allocator.buffer(capacity: payload.count)
            bytes.writeBytes(payload)
            socket.write(bytes)
            socket.flush()
            // Queued bytes still go out before the close.
            socket.closeAfterFlush()
        }
        // The reader takes small bites with pauses, so the writer meets a full buffer many times.
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(theirs, $0.baseAddress, $0.count) }
            if count > 0 {
                received += chunk[0..<count]
                if received.count % (1 << 20) < (16 << 10) { try await Task.sleep(for: .milliseconds(5)) }
            } else if count == 0 {
                break
            } else if errno == EAGAIN {
                try await Task.sleep(for: .milliseconds(1))
            } else {
                Issue.record("read failed: \(errno)")
                break
            }
        }
        Glibc.close(theirs)
        #expect(received.count == payload.count)
        #expect(received == payload)
        try await waitUntil { recorder.closed.withLockedValue { $0 } != nil }
        #expect(recorder.closed.withLockedValue { $0 } == "eof")
        await loop.stop()
    }

    @Test func pausedReadsWaitAndAPeerThatLeavesMeanwhileClosesTheSocket() async throws {
        let loop = try GatewayLoop(index: 0)
        loop.start()
        let (mine, theirs) = socketPair()
        let recorder = Recorder()
        let socket = LoopBound(value: await onLoop(loop) {
            let socket = LoopSocket(fd: mine, loop: loop)
            socket.delegate = recorder
            socket.pauseReading()
            return LoopBound(value: socket)
        }.value)
        _ = Glibc.write(theirs, "held", 4)
        try await Task.sleep(for: .milliseconds(100))
        #expect(recorder.received.withLockedValue { $0 }.isEmpty)
        await onLoop(loop) { socket.value.resumeReading() }
        try await waitUntil { recorder.received.withLockedValue { $0 }.count == 4 }
        #expect(recorder.received.withLockedValue { $0 } == Array("held".utf8))
        // Paused again, the peer goes: the hang-up still closes the socket rather than spinning.
        await onLoop(loop) { socket.value.pauseReading() }
        Glibc.close(theirs)
        try await waitUntil { recorder.closed.withLockedValue { $0 } != nil }
        #expect(recorder.closed.withLockedValue { $0 } != nil)
        #expect(await onLoop(loop) { socket.value.isActive } == false)
        await loop.stop()
    }
}

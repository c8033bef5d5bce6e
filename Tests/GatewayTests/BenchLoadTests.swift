import Foundation
@testable import Gateway
import NIOCore
import NIOPosix
import Testing

/// The load client of `llmux bench gateway`: what it times and how it survives bad upstreams.
@Suite(.serialized) struct BenchLoadTests {
    static func settings(port: Int, concurrency: Int = 3) -> BenchLoad.Settings {
        var settings = BenchLoad.Settings(url: "http://127.0.0.1:\(port)")
        settings.concurrency = concurrency
        settings.warmup = .milliseconds(100)
        settings.duration = .milliseconds(500)
        settings.answerTimeout = .seconds(2)
        return settings
    }

    @Test func timesWholeStreamsPacedByTheStub() async throws {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = 4
        stubSettings.interval = .milliseconds(5)
        let stub = try await BenchStub.bind(stubSettings)
        let result = try await BenchLoad.run(Self.settings(port: stub.localAddress!.port!))
        try? await stub.close()
        #expect(result.errors == 0, "\(result.firstError ?? "")")
        #expect(result.completedInWindow > 0)
        #expect(!result.total.isEmpty)
        // Seven of the mix's eight requests stream; each worker starts at its own place in it.
        #expect(!result.firstByte.isEmpty && result.firstByte.count < result.total.count)
        // The stub sends its last token 3 intervals after its first (a whole answer 4 intervals
        // after the request), so no request can be timed as done sooner: a client that stopped
        // the clock at the head or the first chunk would fail here.
        #expect(result.total.min()! >= 0.015)
    }

    @Test func refusedConnectionsAreErrorsAndTheRunStillEnds() async throws {
        // A port that was just free: nothing listens there.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let result = try await BenchLoad.run(Self.settings(port: port, concurrency: 2))
        #expect(result.errors > 0)
        #expect(result.total.isEmpty && result.completedInWindow == 0)
        #expect(result.firstError?.contains("connect") == true)
    }

    @Test func streamsCutMidWayAreErrorsAndWorkersReconnect() async throws {
        // Every connection answers its first request with a head and one chunk, then closes.
        let upstream = try await ScriptedUpstream.bind(
            pieces: [RawUpstreamTests.sseHead, RawUpstreamTests.chunk("data: {}\n\n")], closeAtEnd: true)
        let result = try await BenchLoad.run(Self.settings(port: upstream.localAddress!.port!, concurrency: 2))
        try? await upstream.close()
        // Each cut stream costs ~15 ms, so two workers see many of them over 0.6 s: they reconnect.
        #expect(result.errors > 2)
        #expect(result.total.isEmpty)
        #expect(result.firstError == "connection closed before the answer ended")
    }

    @Test func anUnansweredRequestEndsAtTheDeadline() async throws {
        // Answers each connection's first request with an error status and ignores the next.
        let upstream = try await ScriptedUpstream.bind(
            pieces: ["HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}"], closeAtEnd: false)
        var settings = Self.settings(port: upstream.localAddress!.port!, concurrency: 1)
        settings.answerTimeout = .milliseconds(300)
        let result = try await BenchLoad.run(settings)
        try? await upstream.close()
        #expect(result.errors == 2)
        #expect(result.firstError == "status 500")
        #expect(result.total.isEmpty)
    }
}

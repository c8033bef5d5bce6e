import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The load client of `llmux bench gateway`: `concurrency` workers each send requests back to
/// back from a fixed mix for a fixed time, streaming the answers, and time the first body byte
/// and the end of every request (`LoadWorker`). `makeClient` and `probe` (AsyncHTTPClient) are
/// for readiness checks and tests.
public enum BenchLoad {
    /// What to run: the target, the model of the request mix, the number of workers and the timing window.
    public struct Settings: Sendable {
        /// Base URL of the server under test; http only, and its path is put before the mix's paths.
        public var url: String
        /// The `model` named in every request body of the mix.
        public var model = "bench"
        /// Workers, each with its own keep-alive connection and one request in flight at a time.
        public var concurrency = 64
        /// Time before the measured window: requests sent then warm the connections and are not timed.
        public var warmup = Duration.seconds(1)
        /// Length of the measured window; a worker sends no new request after it ends.
        public var duration = Duration.seconds(5)
        /// Event-loop threads of the client (one keeps the instrument's share of a small
        /// machine's cores small).
        public var eventLoops = 1
        /// How long after the window a worker still waits for the answer in flight.
        public var answerTimeout = Duration.seconds(60)
        /// Defaults for everything but the target URL.
        public init(url: String) { self.url = url }
    }

    /// What the workers measured, merged over all of them.
    public struct Result: Sendable {
        /// Seconds to the first body byte (streamed requests) and to the end (all), of requests
        /// started in the window.
        public var firstByte: [Double] = []
        /// Seconds from sending to the end of the answer, for every request started in the window.
        public var total: [Double] = []
        /// Requests that ended inside the window.
        public var completedInWindow = 0
        /// Failed requests (non-200 status, refused connection, answer cut off) over the whole run, window or not.
        public var errors = 0
        /// The message of the first error, to show why a run failed.
        public var firstError: String?
        /// Length of the measured window in seconds (the configured duration).
        public var windowSeconds = 0.0
        /// Requests completed in the window divided by its length; 0 for an empty window.
        public var requestsPerSecond: Double { windowSeconds > 0 ? Double(completedInWindow) / windowSeconds : 0 }
    }

    /// The fixed mix, in order (each worker starts at a different place in it): streamed chat
    /// with a shared system prompt, streamed completions with a 1 KiB prompt, one non-streamed chat.
    public static func mix(model: String) -> [(path: String, body: ByteBuffer)] {
        let system = String(repeating: "You are a helpful assistant. ", count: 8)
        var mix: [(String, ByteBuffer)] = []
        for i in 0..<5 {
            mix.append(("/v1/chat/completions", ByteBuffer(string: """
                {"model":"\(model)","messages":[{"role":"system","content":"\(system)"},{"role":"user","content":"Question \(i): what is \(i) + \(i)?"}],"max_tokens":16,"stream":true}
                """)))
        }
        let long = String(repeating: "lorem ipsum dolor sit amet ", count: 38)
        for i in 0..<2 {
            mix.append(("/v1/completions", ByteBuffer(string: """
                {"model":"\(model)","prompt":"\(long) \(i)","max_tokens":16,"stream":true}
                """)))
        }
        mix.append(("/v1/chat/completions", ByteBuffer(string: """
            {"model":"\(model)","messages":[{"role":"user","content":"Say something."}],"max_tokens":16}
            """)))
        return mix
    }

    /// An AsyncHTTPClient on NIO's shared loops allowing `concurrency` + 8 connections per host (probes, tests).
    public static func makeClient(concurrency: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(5), read: .seconds(60)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency + 8))
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    /// Runs the load: `settings.concurrency` workers, each on its own keep-alive connection,
    /// spread over `settings.eventLoops` event-loop threads (NIO directly, see `LoadWorker`).
    public static func run(_ settings: Settings) async throws -> Result {
        guard let url = URL(string: settings.url), let host = url.host, url.scheme == "http" else {
            throw BenchError("not an http URL: \(settings.url)")
        }
        let address = try SocketAddress.makeAddressResolvingHost(host, port: url.port ?? 80)
        let hostHeader = url.port.map { "\(host):\($0)" } ?? host
        let prefix = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
        let requests = mix(model: settings.model).map { path, body in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: prefix + path)
            head.headers.add(name: "host", value: hostHeader)
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(body.readableBytes))
            return (head: head, body: body, streamed: String(buffer: body).contains("\"stream\":true"))
        }
        let start = NIODeadline.now()
        let windowStart = start + .nanoseconds(Int64(seconds(settings.warmup) * 1e9))
        let windowEnd = windowStart + .nanoseconds(Int64(seconds(settings.duration) * 1e9))
        let plan = LoadWorker.Plan(address: address, requests: requests, windowStart: windowStart, windowEnd: windowEnd,
                                   giveUpAt: windowEnd + .nanoseconds(Int64(seconds(settings.answerTimeout) * 1e9)))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, settings.eventLoops))
        let loops = Array(group.makeIterator())
        let futures = (0..<settings.concurrency).map { worker in
            let loop = loops[worker % loops.count]
            let done = loop.makePromise(of: Result.self)
            loop.execute { LoadWorker(plan: plan, worker: worker, eventLoop: loop, done: done).start() }
            return done.futureResult
        }
        var all = Result()
        for future in futures {
            let part = try await future.get()
            all.firstByte += part.firstByte
            all.total += part.total
            all.completedInWindow += part.completedInWindow
            all.errors += part.errors
            if all.firstError == nil { all.firstError = part.firstError }
        }
        try await group.shutdownGracefully()
        all.windowSeconds = seconds(settings.duration)
        return all
    }

    /// The status of `GET url`, or nil when it cannot be reached.
    public static func probe(_ url: String) async -> Int? {
        let client = makeClient(concurrency: 1)
        var status: Int?
        if let response = try? await client.execute(HTTPClientRequest(url: url), timeout: .seconds(2)) {
            _ = try? await response.body.collect(upTo: 1 << 20)
            status = Int(response.status.code)
        }
        try? await client.shutdown()
        return status
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// The q-quantile (0...1) of `values` (nearest rank).
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[rank]
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

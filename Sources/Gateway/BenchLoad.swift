import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The load client of `llmux bench gateway`: `concurrency` workers each send requests back to
/// back from a fixed mix for a fixed time, streaming the answers, and time the first body byte
/// and the end of every request.
public enum BenchLoad {
    public struct Settings: Sendable {
        public var url: String
        public var model = "bench"
        public var concurrency = 64
        public var warmup = Duration.seconds(1)
        public var duration = Duration.seconds(5)
        public init(url: String) { self.url = url }
    }

    public struct Result: Sendable {
        /// Seconds to the first body byte (streamed requests) and to the end (all), of requests
        /// started in the window.
        public var firstByte: [Double] = []
        public var total: [Double] = []
        /// Requests that ended inside the window.
        public var completedInWindow = 0
        public var errors = 0
        public var firstError: String?
        public var windowSeconds = 0.0
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

    public static func makeClient(concurrency: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(5), read: .seconds(60)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency + 8))
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    public static func run(_ settings: Settings, client: HTTPClient) async -> Result {
        let mix = Self.mix(model: settings.model)
        let streamedFlags = mix.map { String(buffer: $0.body).contains("\"stream\":true") }
        let clock = ContinuousClock()
        let start = clock.now
        let windowStart = start + settings.warmup
        let windowEnd = windowStart + settings.duration
        let results = await withTaskGroup(of: Result.self) { group in
            for worker in 0..<settings.concurrency {
                group.addTask {
                    var local = Result()
                    var n = worker
                    while clock.now < windowEnd {
                        let (path, body) = mix[n % mix.count]
                        let streamed = streamedFlags[n % mix.count]
                        n += 1
                        var request = HTTPClientRequest(url: settings.url + path)
                        request.method = .POST
                        request.headers.add(name: "content-type", value: "application/json")
                        request.body = .bytes(body)
                        let sent = clock.now
                        var firstAt: ContinuousClock.Instant?
                        do {
                            let response = try await client.execute(request, timeout: .seconds(120))
                            guard response.status == .ok else {
                                let text = try await response.body.collect(upTo: 1 << 20)
                                throw BenchError("status \(response.status.code): \(String(buffer: text).prefix(200))")
                            }
                            var bytes = 0
                            for try await chunk in response.body {
                                if firstAt == nil { firstAt = clock.now }
                                bytes += chunk.readableBytes
                            }
                            let end = clock.now
                            if sent >= windowStart && sent < windowEnd {
                                if streamed { local.firstByte.append(Self.seconds((firstAt ?? end) - sent)) }
                                local.total.append(Self.seconds(end - sent))
                            }
                            if end >= windowStart && end < windowEnd { local.completedInWindow += 1 }
                        } catch {
                            local.errors += 1
                            if local.firstError == nil { local.firstError = "\(error)" }
                            try? await Task.sleep(for: .milliseconds(10))
                        }
                    }
                    return local
                }
            }
            var all = Result()
            for await part in group {
                all.firstByte += part.firstByte
                all.total += part.total
                all.completedInWindow += part.completedInWindow
                all.errors += part.errors
                if all.firstError == nil { all.firstError = part.firstError }
            }
            return all
        }
        var result = results
        result.windowSeconds = Self.seconds(settings.duration)
        return result
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

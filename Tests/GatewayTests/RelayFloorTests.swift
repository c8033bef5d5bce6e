import AsyncHTTPClient
import Foundation
@testable import Gateway
import NIOCore
import Testing

/// The relay floor of `llmux bench gateway`: it must pass bytes through untouched, or its
/// figure would not be a floor but another proxy.
@Suite(.serialized) struct RelayFloorTests {
    static func fetch(_ client: HTTPClient, port: Int, path: String, body: String?) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        if let body {
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test func answersThroughTheRelayEqualTheDirectOnes() async throws {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = 5
        stubSettings.interval = .milliseconds(2)
        let stub = try await BenchStub.bind(stubSettings)
        let stubPort = stub.localAddress!.port!
        let relayPort = try RelayFloor.start(port: 0, upstreamPort: stubPort, threads: 2)
        #expect(relayPort != stubPort)
        let client = BenchLoad.makeClient(concurrency: 2)
        let requests: [(String, String?)] = [
            ("/v1/models", nil),
            ("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#),
            ("/v1/chat/completions", #"{"model":"bench","messages":[{"role":"user","content":"x"}]}"#),
        ]
        for (path, body) in requests {
            let direct = try await Self.fetch(client, port: stubPort, path: path, body: body)
            let relayed = try await Self.fetch(client, port: relayPort, path: path, body: body)
            #expect(direct.0 == 200)
            #expect(relayed.0 == direct.0 && relayed.1 == direct.1, "\(path)")
        }
        // The streamed answer really streamed: five token events and the end marker.
        let streamed = try await Self.fetch(client, port: relayPort, path: "/v1/completions", body: requests[1].1)
        #expect(streamed.1.components(separatedBy: "data: ").count - 1 == 6)
        try? await client.shutdown()

        // Many keep-alive streams at once, spread over both relay threads.
        let result = try await BenchLoad.run(BenchLoadTests.settings(port: relayPort, concurrency: 8))
        #expect(result.errors == 0, "\(result.firstError ?? "")")
        #expect(result.completedInWindow > 0)
        try? await stub.close()
    }

    @Test func aPortInUseIsAClearError() throws {
        // Listeners share ports only with other SO_REUSEPORT listeners; a plain one refuses them.
        let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(taken) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                bind(taken, raw, length) == 0 && listen(taken, 1) == 0 && getsockname(taken, raw, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(throws: RelayFloor.Failure.self) { _ = try RelayFloor.start(port: port, upstreamPort: 1, threads: 1) }
        do {
            _ = try RelayFloor.start(port: port, upstreamPort: 1, threads: 1)
        } catch {
            #expect("\(error)".contains("listen on 127.0.0.1:\(port)") && "\(error)".contains("in use"))
        }
    }
}

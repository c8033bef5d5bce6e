import Foundation
@testable import Gateway
import Testing

@Suite struct BodyScannerTests {
    func scan(_ text: String) throws -> ScannedBody { try BodyScanner.scan(Array(text.utf8)) }

    @Test func findsModelStreamAndPrompt() throws {
        let text = #"{"prompt":"hello","max_tokens":4,"model":"demo","stream":true}"#
        let body = try scan(text)
        #expect(body.model == "demo")
        #expect(body.stream)
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[body.prompt!], as: UTF8.self) == #""hello""#)
    }

    @Test func messagesWinOverPromptAndNestedKeysAreIgnored() throws {
        let text = #" { "messages" : [ {"role":"user","content":"a \"model\": \"x\" }]"} ], "metadata": {"model": "inner", "stream": true}, "model" : "chat-m" } "#
        let body = try scan(text)
        #expect(body.model == "chat-m")
        #expect(!body.stream)
        let value = String(decoding: Array(text.utf8)[body.prompt!], as: UTF8.self)
        #expect(value.hasPrefix("[ {\"role\"") && value.hasSuffix("} ]"))
    }

    @Test func unescapesTheModelName() throws {
        #expect(try scan(#"{"model":"a\"b\\c\u00e9\ud83d\ude00"}"#).model == "a\"b\\c\u{e9}\u{1F600}")
        #expect(try scan(#"{"model":"plain"}"#).model == "plain")
    }

    @Test func streamFalseAndOtherValues() throws {
        #expect(try scan(#"{"stream":false,"model":"m","n":2,"x":null,"t":-1.5e3}"#) == ScannedBody(model: "m", stream: false))
        #expect(try scan("{}") == ScannedBody())
        #expect(try scan(#"{"model":7}"#).model == nil)
    }

    @Test func rejectsBrokenBodies() {
        for text in ["", "[1]", #"{"model":"m""#, #"{"model":"m",}"#, #"{"model" "m"}"#, #"{"a":[1,2}"#, #"{"a":"x"#] {
            #expect(throws: BodyScanError.self, "\(text)") { try scan(text) }
        }
    }

    @Test func prefixHashesShareLeadingBlocks() {
        let a = Array("0123456789abcdefXYZ".utf8), b = Array("0123456789abcdefQRS".utf8)
        let ha = a.withUnsafeBytes { PrefixHasher.blockHashes($0, blockSize: 8, maxBlocks: 10) }
        let hb = b.withUnsafeBytes { PrefixHasher.blockHashes($0, blockSize: 8, maxBlocks: 10) }
        #expect(ha.count == 3 && hb.count == 3)
        #expect(ha[0] == hb[0] && ha[1] == hb[1] && ha[2] != hb[2])
        let capped = a.withUnsafeBytes { PrefixHasher.blockHashes($0, blockSize: 4, maxBlocks: 2) }
        #expect(capped.count == 2)
    }
}

@Suite struct HealthTests {
    @Test func fallsAfterConsecutiveFailuresAndRisesAfterSuccesses() {
        var h = HealthTracker(rise: 2, fall: 2)
        #expect(h.isHealthy)
        #expect(h.record(success: false) == nil)
        #expect(h.record(success: true) == nil)  // a success resets the failure count
        #expect(h.record(success: false) == nil)
        #expect(h.record(success: false) == .unhealthy)
        #expect(!h.isHealthy)
        #expect(h.record(success: true) == nil)
        #expect(h.record(success: false) == nil)
        #expect(h.record(success: true) == nil)
        #expect(h.record(success: true) == .healthy)
        #expect(h.record(success: true) == nil)
    }

    @Test func ejectIsImmediateAndNeedsRiseChecksBack() {
        var h = HealthTracker(rise: 2, fall: 3)
        #expect(h.eject() == .unhealthy)
        #expect(h.eject() == nil)
        #expect(h.record(success: true) == nil)
        #expect(h.record(success: true) == .healthy)
    }
}

@Suite struct RoutingTests {
    func views(_ outstanding: [Int], eligible: [Bool]? = nil) -> [ReplicaView] {
        outstanding.enumerated().map { ReplicaView(eligible: eligible?[$0.offset] ?? true, outstanding: $0.element) }
    }

    @Test func roundRobinTakesTurnsAndSkipsIneligible() {
        let chooser = ReplicaChooser(policy: .roundRobin)
        let picks = (0..<6).map { _ in chooser.choose(views([0, 0, 0]))! }
        #expect(picks == [0, 1, 2, 0, 1, 2])
        let skipping = (0..<4).map { _ in chooser.choose(views([0, 0, 0], eligible: [true, false, true]))! }
        #expect(Set(skipping) == [0, 2])
        #expect(chooser.choose(views([0, 0], eligible: [false, false])) == nil)
        #expect(chooser.choose(views([0, 0]), excluded: [0]) == 1)
    }

    @Test func leastOutstandingPicksTheIdlest() {
        let chooser = ReplicaChooser(policy: .leastOutstanding)
        #expect(chooser.choose(views([5, 1, 3])) == 1)
        #expect(chooser.choose(views([5, 1, 3], eligible: [true, false, true])) == 2)
        // Ties are shared.
        let picks = Set((0..<10).map { _ in chooser.choose(views([2, 2]))! })
        #expect(picks == [0, 1])
    }

    @Test func powerOfTwoUsesReportedLoad() {
        let chooser = ReplicaChooser(policy: .powerOfTwo, seed: 7)
        var v = [ReplicaView(eligible: true, outstanding: 0, running: 40, waiting: 10, kvUsage: 0.9),
                 ReplicaView(eligible: true, outstanding: 0, running: 2, waiting: 0, kvUsage: 0.1)]
        for _ in 0..<20 { #expect(chooser.choose(v) == 1) }
        // With three, the most loaded one is never picked (it loses every pair it is in).
        v.append(ReplicaView(eligible: true, outstanding: 1, running: 3))
        for _ in 0..<50 { #expect(chooser.choose(v) != 0) }
        #expect(ReplicaView(eligible: true, outstanding: 3, running: 1, waiting: 1, kvUsage: 0.5).load == 3 + 1 + 4)
    }

    @Test func prefixSticksToTheReplicaThatSawThePrefix() {
        let chooser = ReplicaChooser(policy: .prefix)
        let shared: [UInt64] = [1, 2, 3, 4]
        let first = chooser.choose(views([0, 0, 0]), prefixHashes: shared)!
        // Same prefix, different tail: same replica even when it is a little busier.
        var busy = [0, 0, 0]
        busy[first] = 3
        #expect(chooser.choose(views(busy), prefixHashes: [1, 2, 3, 9]) == first)
        // Overloaded (load > least × 1.5 + 8): the least loaded one takes it instead.
        busy[first] = 20
        let spilled = chooser.choose(views(busy), prefixHashes: [1, 2, 3, 4])!
        #expect(spilled != first)
        // A prompt that shares too little (1 block of 10 < 30 %) goes to the least loaded.
        let least = chooser.choose(views([4, 0, 4]), prefixHashes: [77] + Array(100..<109))
        #expect(least == 1)
        // An ineligible remembered replica is skipped.
        let other = chooser.choose(views([0, 0, 0], eligible: [true, true, true].enumerated().map { $0.offset != spilled }),
                                   prefixHashes: [1, 2, 3, 4])
        #expect(other != spilled && other != nil)
    }

    @Test func policyNames() {
        #expect(RoutingPolicy(name: "p2c") == .powerOfTwo)
        #expect(RoutingPolicy(name: "round-robin") == .roundRobin)
        #expect(RoutingPolicy(name: "cache_aware") == .prefix)
        #expect(RoutingPolicy(name: "nope") == nil)
    }
}

@Suite struct ConfigurationTests {
    @Test func yamlFile() throws {
        let config = try GatewayConfiguration.parse("""
            port: 9100
            health_interval_ms: 100
            retries: 1
            event_loops: 3
            models:
              demo:
                policy: prefix
                upstreams: [http://127.0.0.1:8001/, http://127.0.0.1:8002/v1]
              other:
                upstreams: [http://127.0.0.1:8001]
            """)
        #expect(config.port == 9100 && config.healthIntervalMs == 100 && config.retries == 1)
        #expect(config.eventLoops == 3 && config.resolvedEventLoops == 3)
        #expect(GatewayConfiguration().resolvedEventLoops == ProcessInfo.processInfo.activeProcessorCount)
        #expect(config.models.map(\.name) == ["demo", "other"])
        #expect(config.models[0].policy == .prefix && config.models[1].policy == .leastOutstanding)
        #expect(config.models[0].upstreams == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"])
        #expect(config.upstreamURLs == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"])
        try config.validate()
    }

    @Test func upstreamOptions() throws {
        var config = GatewayConfiguration()
        try config.addUpstream("demo=http://a:1")
        try config.addUpstream("demo=http://b:2/")
        try config.addUpstream("demo=http://a:1")
        #expect(config.models.count == 1 && config.models[0].upstreams == ["http://a:1", "http://b:2"])
        #expect(throws: GatewayConfigurationError.self) { try config.addUpstream("demo") }
        #expect(throws: GatewayConfigurationError.self) { try config.addUpstream("demo=ftp://x") }
        #expect(throws: GatewayConfigurationError.self) { try GatewayConfiguration().validate() }
        config.eventLoops = -1
        #expect(throws: GatewayConfigurationError.self) { try config.validate() }
    }

    @Test func loadReport() {
        let loads = GatewayState.parseLoad(Data(#"{"queued":0,"models":{"demo":{"running":3,"waiting":1,"kv_usage":0.25}}}"#.utf8))
        #expect(loads["demo"] == ModelLoad(running: 3, waiting: 1, kvUsage: 0.25))
    }
}

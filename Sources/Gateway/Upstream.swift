import Synchronization

/// Load one upstream reports for one model (its `/load` answer).
public struct ModelLoad: Sendable, Equatable {
    /// Requests the upstream is running for the model.
    public var running = 0
    /// Requests queued on the upstream for the model.
    public var waiting = 0
    /// Share of the upstream's KV cache in use, 0...1.
    public var kvUsage = 0.0
    /// A load from its parts; all zero is what a model missing from the `/load` answer counts as.
    public init(running: Int = 0, waiting: Int = 0, kvUsage: Double = 0) {
        self.running = running
        self.waiting = waiting
        self.kvUsage = kvUsage
    }
}

/// One `llmux serve` process: its health, its requests in flight from this gateway, and the
/// load it last reported. Shared by every model it serves.
public final class Upstream: Sendable {
    /// Base URL (`http://host:port`, no trailing slash); also the `upstream` label in the metrics.
    public let url: String
    /// Requests in flight from this gateway at most (`max_concurrent_per_upstream`); at it, not eligible.
    public let maxConcurrent: Int
    /// Host and port from the URL (http only), and the Host header sent.
    let host: String
    let port: Int
    let hostHeader: String
    struct State {
        var health: HealthTracker
        var outstanding = 0
        var load: [String: ModelLoad] = [:]
        /// The host's addresses, once resolved.
        var addresses: [ResolvedAddress]?
    }
    private let state: Mutex<State>

    /// Parses host and port (80 when absent; IPv6 in brackets) from `url`; starts in `health`'s state.
    public init(url: String, maxConcurrent: Int, health: HealthTracker = HealthTracker()) {
        self.url = url
        self.maxConcurrent = maxConcurrent
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        hostHeader = String(rest)
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? 80 : 80
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = Int(rest[rest.index(after: colon)...]) ?? 80
        } else {
            host = String(rest)
            port = 80
        }
        state = Mutex(State(health: health))
    }

    /// True while the upstream is in rotation.
    public var isHealthy: Bool { state.withLock { $0.health.isHealthy } }
    /// Requests in flight to it from this gateway, over all the models it serves.
    public var outstanding: Int { state.withLock { $0.outstanding } }

    /// What routing sees of this upstream for `model`.
    func view(model: String) -> ReplicaView {
        state.withLock { s in
            let load = s.load[model] ?? ModelLoad()
            return ReplicaView(eligible: s.health.isHealthy && s.outstanding < maxConcurrent, outstanding: s.outstanding,
                               running: load.running, waiting: load.waiting, kvUsage: load.kvUsage)
        }
    }

    /// Takes a request slot if healthy and below the limit.
    func acquire() -> Bool {
        state.withLock { s in
            guard s.health.isHealthy, s.outstanding < maxConcurrent else { return false }
            s.outstanding += 1
            return true
        }
    }

    func release() { state.withLock { $0.outstanding -= 1 } }

    /// The host's addresses, resolved on first use and kept (`GatewayState` resolves them at
    /// start, so a loop only blocks on the resolver for a host that did not resolve then).
    func addresses() throws -> [ResolvedAddress] {
        if let known = state.withLock({ $0.addresses }) { return known }
        let resolved = try ResolvedAddress.resolve(host: host, port: port)
        guard !resolved.isEmpty else { throw AddressError(description: "no address for \(host)") }
        state.withLock { $0.addresses = resolved }
        return resolved
    }

    /// Records an active check; returns the new state on a change.
    @discardableResult
    func recordCheck(success: Bool) -> HealthTracker.State? { state.withLock { $0.health.record(success: success) } }

    /// A request could not connect: out of rotation until the checks say otherwise.
    @discardableResult
    func eject() -> HealthTracker.State? { state.withLock { $0.health.eject() } }

    func updateLoad(_ load: [String: ModelLoad]) { state.withLock { $0.load = load } }
}

/// One model's replicas and its chooser.
public final class ModelRoute: Sendable {
    /// The model name, as request bodies give it.
    public let name: String
    /// The model's replicas in configuration order; the chooser returns indices into it.
    public let upstreams: [Upstream]
    /// The model's policy and its state (round-robin cursor, prefix table).
    public let chooser: ReplicaChooser

    init(name: String, upstreams: [Upstream], chooser: ReplicaChooser) {
        self.name = name
        self.upstreams = upstreams
        self.chooser = chooser
    }

    enum Pick {
        case upstream(Int, Upstream)
        /// Healthy replicas exist but every one is at its limit.
        case allBusy
        /// No healthy replica (left to try).
        case noneHealthy
    }

    /// Chooses a replica not in `excluded` and takes a slot on it.
    func acquire(excluded: Set<Int>, prefixHashes: [UInt64]) -> Pick {
        for _ in 0..<3 {
            let views = upstreams.map { $0.view(model: name) }
            guard let index = chooser.choose(views, excluded: excluded, prefixHashes: prefixHashes) else {
                let healthyLeft = upstreams.indices.contains { !excluded.contains($0) && upstreams[$0].isHealthy }
                return healthyLeft ? .allBusy : .noneHealthy
            }
            // Another request may have taken the last slot since the views were read.
            if upstreams[index].acquire() { return .upstream(index, upstreams[index]) }
        }
        return .allBusy
    }
}

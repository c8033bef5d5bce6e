import Synchronization

/// Health of one upstream from active checks and from failures seen by requests.
///
/// `healthy` → `unhealthy` after `fall` consecutive failed checks, or at once on a refused
/// connection or reset seen by a request (`ejected`); `unhealthy` → `healthy` after `rise`
/// consecutive good checks. An upstream starts healthy (so the gateway serves at once) and the
/// first check corrects it within one interval.
public struct HealthTracker: Sendable, Equatable {
    /// `healthy`: in rotation; `unhealthy`: out of it until enough good checks.
    public enum State: String, Sendable { case healthy, unhealthy }
    /// The current state; starts healthy.
    public private(set) var state: State = .healthy
    /// Failed checks in a row since the last good one (raised to at least `fall` by an ejection).
    public private(set) var consecutiveFailures = 0
    /// Good checks in a row since the last failure or ejection.
    public private(set) var consecutiveSuccesses = 0
    /// Consecutive good checks that bring an unhealthy upstream back (at least 1).
    public let rise: Int
    /// Consecutive failed checks that take a healthy upstream out (at least 1).
    public let fall: Int

    /// A healthy tracker; `rise` and `fall` below 1 are taken as 1.
    public init(rise: Int = 2, fall: Int = 2) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
    }

    /// True while the upstream is in rotation.
    public var isHealthy: Bool { state == .healthy }

    /// Records a check; returns the new state when it changed.
    @discardableResult
    public mutating func record(success: Bool) -> State? {
        if success {
            consecutiveSuccesses += 1
            consecutiveFailures = 0
            if state == .unhealthy && consecutiveSuccesses >= rise {
                state = .healthy
                return state
            }
        } else {
            consecutiveFailures += 1
            consecutiveSuccesses = 0
            if state == .healthy && consecutiveFailures >= fall {
                state = .unhealthy
                return state
            }
        }
        return nil
    }

    /// A request could not reach the upstream at all: out of rotation until `rise` good checks.
    @discardableResult
    public mutating func eject() -> State? {
        consecutiveSuccesses = 0
        consecutiveFailures = max(consecutiveFailures, fall)
        guard state == .healthy else { return nil }
        state = .unhealthy
        return state
    }
}

/// How a model's requests are spread over its replicas.
public enum RoutingPolicy: String, Sendable, CaseIterable, Codable {
    /// In turn.
    case roundRobin = "round_robin"
    /// The replica with the fewest requests in flight from this gateway.
    case leastOutstanding = "least_outstanding"
    /// Two replicas at random; the one with the lower load (in flight here, plus the running and
    /// waiting requests and KV usage the upstream reports) wins.
    case powerOfTwo = "power_of_two"
    /// Requests sharing a prompt prefix go to the replica that saw it last, unless that replica is
    /// much more loaded than the least loaded one; otherwise least loaded.
    case prefix = "prefix"

    /// Parses a policy name, ignoring case and taking `-` as `_`, with aliases (rr, lor, p2c, cache_aware…);
    /// nil for an unknown name.
    public init?(name: String) {
        let normalized = name.lowercased().replacingOccurrences(of: "-", with: "_")
        switch normalized {
        case "round_robin", "rr": self = .roundRobin
        case "least_outstanding", "least_requests", "lor": self = .leastOutstanding
        case "power_of_two", "p2c": self = .powerOfTwo
        case "prefix", "prefix_aware", "cache_aware": self = .prefix
        default: return nil
        }
    }
}

/// What a policy sees of one replica when choosing.
public struct ReplicaView: Sendable, Equatable {
    /// Healthy and below its concurrency limit.
    public var eligible: Bool
    /// Requests in flight from this gateway.
    public var outstanding: Int
    /// Load reported by the upstream for this model: running, waiting, KV usage (0...1).
    public var running: Int
    /// Requests the upstream reports queued for this model (counted again in `load`).
    public var waiting: Int
    /// Share of the upstream's KV cache in use, 0...1, as it reports.
    public var kvUsage: Double

    /// A view from its parts; the upstream-reported figures default to 0 (no load known).
    public init(eligible: Bool, outstanding: Int, running: Int = 0, waiting: Int = 0, kvUsage: Double = 0) {
        self.eligible = eligible
        self.outstanding = outstanding
        self.running = running
        self.waiting = waiting
        self.kvUsage = kvUsage
    }

    /// The load score compared by power-of-two and prefix routing: the larger of what this
    /// gateway has in flight and what the upstream runs, plus waiting requests counted again (a
    /// queue means the replica is saturated) and up to 8 for a full KV cache.
    public var load: Double {
        Double(max(outstanding, running + waiting)) + Double(waiting) + 8 * kvUsage
    }
}

/// Settings of prefix-aware routing.
public struct PrefixSettings: Sendable, Equatable, Codable {
    /// Bytes of prompt JSON per hashed block.
    public var blockBytes = 128
    /// Blocks hashed at most (the prefix considered is blockBytes × maxBlocks long).
    public var maxBlocks = 64
    /// Share of the prompt's blocks that must match before the match decides.
    public var matchThreshold = 0.3
    /// The matched replica is overloaded when its load exceeds the least load × balanceRel + balanceAbs.
    public var balanceRel = 1.5
    /// Absolute slack added to the overload bound (see `balanceRel`).
    public var balanceAbs = 8.0
    /// Remembered prefix blocks (two generations of this size).
    public var capacity = 65_536

    /// The defaults: 128-byte blocks, 64 blocks, a 30 % match, 1.5 × least load + 8, 65,536 entries a generation.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case blockBytes = "block_bytes", maxBlocks = "max_blocks", matchThreshold = "match_threshold"
        case balanceRel = "balance_rel", balanceAbs = "balance_abs", capacity
    }

    /// Reads the snake_case keys (`block_bytes`, `max_blocks`, …); a missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        blockBytes = try c.decodeIfPresent(Int.self, forKey: .blockBytes) ?? blockBytes
        maxBlocks = try c.decodeIfPresent(Int.self, forKey: .maxBlocks) ?? maxBlocks
        matchThreshold = try c.decodeIfPresent(Double.self, forKey: .matchThreshold) ?? matchThreshold
        balanceRel = try c.decodeIfPresent(Double.self, forKey: .balanceRel) ?? balanceRel
        balanceAbs = try c.decodeIfPresent(Double.self, forKey: .balanceAbs) ?? balanceAbs
        capacity = try c.decodeIfPresent(Int.self, forKey: .capacity) ?? capacity
    }
}

/// The choosing part of one model's router: a policy and its state (the round-robin cursor, the
/// prefix table). Pure apart from that state, so tests drive it with made-up views.
public final class ReplicaChooser: Sendable {
    /// The policy this chooser applies.
    public let policy: RoutingPolicy
    /// Settings used when the policy is `prefix`.
    public let prefix: PrefixSettings
    private let cursor = Atomic<Int>(0)
    private let random = Mutex(SplitMix(seed: 0x5EED))
    /// Prefix block hash → replica index, in two generations (a cheap LRU).
    private let table = Mutex(PrefixTable())

    struct PrefixTable {
        var current: [UInt64: Int] = [:]
        var previous: [UInt64: Int] = [:]

        func lookup(_ hash: UInt64) -> Int? { current[hash] ?? previous[hash] }

        mutating func insert(_ hashes: [UInt64], replica: Int, capacity: Int) {
            for hash in hashes { current[hash] = replica }
            if current.count > capacity {
                previous = current
                current = [:]
            }
        }
    }

    /// A chooser with an empty prefix table; `seed` makes power-of-two's random picks reproducible.
    public init(policy: RoutingPolicy, prefix: PrefixSettings = PrefixSettings(), seed: UInt64 = 0x5EED) {
        self.policy = policy
        self.prefix = prefix
        random.withLock { $0 = SplitMix(seed: seed) }
    }

    /// The replica to try, among eligible ones not in `excluded`; nil when none is left.
    /// `prefixHashes` are the request's prompt block hashes (prefix policy only).
    public func choose(_ views: [ReplicaView], excluded: Set<Int> = [], prefixHashes: [UInt64] = []) -> Int? {
        let candidates = views.indices.filter { views[$0].eligible && !excluded.contains($0) }
        guard !candidates.isEmpty else { return nil }
        if candidates.count == 1 {
            if policy == .prefix && !prefixHashes.isEmpty {
                table.withLock { $0.insert(prefixHashes, replica: candidates[0], capacity: prefix.capacity) }
            }
            return candidates[0]
        }
        switch policy {
        case .roundRobin:
            let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            // The next eligible replica at or after the cursor, so skipping a bad one does not
            // send two turns to its neighbour.
            let n = views.count
            for step in 0..<n {
                let index = ((start + step) % n + n) % n
                if candidates.contains(index) { return index }
            }
            return candidates[0]
        case .leastOutstanding:
            return leastBy(candidates) { Double(views[$0].outstanding) }
        case .powerOfTwo:
            let (a, b) = random.withLock { rng -> (Int, Int) in
                let first = Int(rng.next() % UInt64(candidates.count))
                var second = Int(rng.next() % UInt64(candidates.count - 1))
                if second >= first { second += 1 }
                return (candidates[first], candidates[second])
            }
            let la = views[a].load, lb = views[b].load
            return la < lb ? a : lb < la ? b : (views[a].outstanding <= views[b].outstanding ? a : b)
        case .prefix:
            let least = leastBy(candidates) { views[$0].load }
            guard !prefixHashes.isEmpty else { return least }
            let chosen = table.withLock { table -> Int in
                var pick = least
                // Longest matching prefix whose replica can still take it.
                for (i, hash) in prefixHashes.enumerated().reversed() {
                    guard let replica = table.lookup(hash), candidates.contains(replica) else { continue }
                    let matched = Double(i + 1) / Double(prefixHashes.count)
                    let overloaded = views[replica].load > views[least].load * prefix.balanceRel + prefix.balanceAbs
                    if matched >= prefix.matchThreshold && !overloaded { pick = replica }
                    break
                }
                table.insert(prefixHashes, replica: pick, capacity: prefix.capacity)
                return pick
            }
            return chosen
        }
    }

    /// The candidate with the lowest key; ties broken in turn so equal replicas share the work.
    private func leastBy(_ candidates: [Int], _ key: (Int) -> Double) -> Int {
        let offset = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        var best = candidates[0]
        var bestKey = Double.infinity
        for step in 0..<candidates.count {
            let index = candidates[((offset % candidates.count) + candidates.count + step) % candidates.count]
            let value = key(index)
            if value < bestKey {
                best = index
                bestKey = value
            }
        }
        return best
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

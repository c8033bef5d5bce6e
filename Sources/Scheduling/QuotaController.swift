import LLMuxCore

/// KV quotas per model, in pages, summing to the pool. They start proportional to each model's
/// expected request rate times its per-token KV size (MuxServe §4.3's memory split), and under
/// `mux` move every `interval` seconds from models that leave pages unused to models whose
/// waiting requests were refused for lack of quota.
public struct QuotaController: Sendable {
    /// Pages each model may hold before its new requests wait.
    public private(set) var quotaPages: [ModelID: Int]
    /// Quota moves so far (for metrics and tests).
    public private(set) var moveCount = 0
    private let pageCount: Int
    private let floorPages: Int
    private var blocked: Set<ModelID> = []
    private var lastMove: Double?

    /// Quotas proportional to `weights` (rate × KV bytes per token, any scale).
    public init(pageCount: Int, weights: [ModelID: Double]) {
        self.pageCount = pageCount
        let total = weights.values.reduce(0, +)
        let models = weights.keys.sorted { $0.name < $1.name }
        var quotas: [ModelID: Int] = [:]
        for model in models {
            quotas[model] = total > 0 ? Int(Double(pageCount) * weights[model]! / total) : pageCount / max(1, models.count)
        }
        // Hand the rounding remainder to the heaviest model so quotas sum to the pool.
        if let heaviest = models.max(by: { weights[$0]! < weights[$1]! }) {
            quotas[heaviest]! += pageCount - quotas.values.reduce(0, +)
        }
        self.quotaPages = quotas
        // Every model keeps a small floor so it can always run something.
        self.floorPages = max(1, pageCount / (8 * max(1, models.count)))
    }

    /// The quota of `model`.
    public func quota(_ model: ModelID) -> Int { quotaPages[model] ?? 0 }

    /// Notes that `model` had a request refused for lack of quota.
    public mutating func noteBlocked(_ model: ModelID) { blocked.insert(model) }

    /// Moves unused quota to blocked models if `interval` has passed since the last move.
    public mutating func adapt(now: Double, interval: Double, usedPages: [ModelID: Int]) {
        guard let last = lastMove else { lastMove = now; return }
        guard now - last >= interval else { return }
        lastMove = now
        defer { blocked = [] }
        let takers = blocked.sorted { $0.name < $1.name }
        guard !takers.isEmpty else { return }
        // A donor keeps what it uses plus a margin, and never drops below the floor.
        var spare: [ModelID: Int] = [:]
        for (model, quota) in quotaPages where !blocked.contains(model) {
            let used = usedPages[model] ?? 0
            let keep = max(floorPages, used + (quota - used) / 2)
            if quota > keep { spare[model] = quota - keep }
        }
        let available = spare.values.reduce(0, +)
        guard available > 0 else { return }
        var moved = 0
        for (model, amount) in spare.sorted(by: { $0.key.name < $1.key.name }) {
            quotaPages[model]! -= amount
            moved += amount
        }
        for (index, taker) in takers.enumerated() {
            quotaPages[taker]! += moved / takers.count + (index < moved % takers.count ? 1 : 0)
        }
        moveCount += 1
    }

    /// True when the quotas still add up to the pool.
    public var isConsistent: Bool { quotaPages.values.reduce(0, +) == pageCount && quotaPages.values.allSatisfy { $0 >= 0 } }
}

import LLMuxCore

/// Page tables of every sequence of a unit over one shared page pool, with per-model usage
/// counters. Models differ in tokens per page (a page is a fixed number of bytes; a model with a
/// larger per-token KV size fits fewer tokens in it), so every call names the model.
public struct KVCacheManager: Sendable {
    /// The shared pool.
    public private(set) var pool: PagePool
    /// Tokens one page holds, by model.
    public let tokensPerPageByModel: [ModelID: Int]
    /// Pages held by each sequence, in order.
    public private(set) var pagesBySequence: [SequenceID: [Int32]] = [:]
    /// The model each sequence belongs to.
    private var modelBySequence: [SequenceID: ModelID] = [:]
    /// Pages held by each model (the sum over its sequences).
    public private(set) var usedPagesByModel: [ModelID: Int] = [:]

    /// A manager over `pageCount` pages.
    public init(pageCount: Int, tokensPerPageByModel: [ModelID: Int]) {
        precondition(tokensPerPageByModel.values.allSatisfy { $0 > 0 })
        self.pool = PagePool(pageCount: pageCount)
        self.tokensPerPageByModel = tokensPerPageByModel
    }

    /// Tokens per page of a model.
    public func tokensPerPage(_ model: ModelID) -> Int {
        guard let tokens = tokensPerPageByModel[model] else { preconditionFailure("unknown model \(model)") }
        return tokens
    }

    /// Pages needed to hold `tokens` tokens of `model`.
    public func pagesNeeded(tokens: Int, model: ModelID) -> Int {
        let perPage = tokensPerPage(model)
        return (tokens + perPage - 1) / perPage
    }

    /// Extra pages `sequence` needs to hold `tokens` tokens in all.
    public func additionalPagesNeeded(_ sequence: SequenceID, model: ModelID, tokens: Int) -> Int {
        max(0, pagesNeeded(tokens: tokens, model: model) - (pagesBySequence[sequence]?.count ?? 0))
    }

    /// Grows `sequence`'s page table to hold `tokens` tokens. Returns false, changing nothing,
    /// when the pool has too few free pages.
    public mutating func reserve(_ sequence: SequenceID, model: ModelID, tokens: Int) -> Bool {
        if let owner = modelBySequence[sequence] { precondition(owner == model, "sequence changed model") }
        let missing = additionalPagesNeeded(sequence, model: model, tokens: tokens)
        guard missing > 0 else { return true }
        guard let pages = pool.allocate(missing) else { return false }
        pagesBySequence[sequence, default: []].append(contentsOf: pages)
        modelBySequence[sequence] = model
        usedPagesByModel[model, default: 0] += missing
        return true
    }

    /// Frees every page of `sequence` (no-op when it holds none).
    public mutating func release(_ sequence: SequenceID) {
        guard let pages = pagesBySequence.removeValue(forKey: sequence), let model = modelBySequence.removeValue(forKey: sequence) else {
            return
        }
        pool.release(pages)
        usedPagesByModel[model, default: 0] -= pages.count
    }

    /// The page table of `sequence`.
    public func pageTable(_ sequence: SequenceID) -> [Int32] { pagesBySequence[sequence] ?? [] }

    /// KV slot (page * tokensPerPage + offset) of `position` in `sequence`.
    public func slot(_ sequence: SequenceID, model: ModelID, position: Int) -> Int32 {
        let perPage = tokensPerPage(model)
        let pages = pagesBySequence[sequence]!
        return pages[position / perPage] * Int32(perPage) + Int32(position % perPage)
    }

    /// Free pages in the pool.
    public var freePageCount: Int { pool.freePageCount }

    /// True when the per-model counters, the page tables and the pool agree: every page is either
    /// free or held by exactly one sequence. Tests call it to prove no page leaks.
    public func isConsistent() -> Bool {
        let held = pagesBySequence.values.flatMap { $0 }
        guard Set(held).count == held.count, held.count == pool.usedPageCount else { return false }
        var perModel: [ModelID: Int] = [:]
        for (sequence, pages) in pagesBySequence {
            guard let model = modelBySequence[sequence] else { return false }
            perModel[model, default: 0] += pages.count
        }
        return perModel.filter { $0.value > 0 } == usedPagesByModel.filter { $0.value > 0 }
    }
}

import KVMemory
import LLMuxCore
import Testing

@Suite struct PagePoolTests {
    @Test func allocationIsAllOrNothing() {
        var pool = PagePool(pageCount: 5)
        let first = pool.allocate(3)
        #expect(first?.count == 3)
        let second = pool.allocate(3)
        #expect(second == nil)
        #expect(pool.freePageCount == 2)
        pool.release(first!)
        #expect(pool.freePageCount == 5)
        let all = pool.allocate(5)!
        #expect(Set(all).count == 5 && all.allSatisfy { (0..<5).contains($0) })
    }
}

@Suite struct KVCacheManagerTests {
    let small = ModelID("small")
    let large = ModelID("large")

    @Test func modelsWithDifferentPageCapacitiesShareOnePool() {
        var kv = KVCacheManager(pageCount: 10, tokensPerPageByModel: [small: 32, large: 8])
        let a = SequenceID(1), b = SequenceID(2)
        let reserved1 = kv.reserve(a, model: small, tokens: 40)
        #expect(reserved1)  // 2 pages
        let reserved2 = kv.reserve(b, model: large, tokens: 40)
        #expect(reserved2)  // 5 pages
        #expect(kv.usedPagesByModel[small] == 2 && kv.usedPagesByModel[large] == 5)
        #expect(kv.freePageCount == 3)
        let reserved3 = kv.reserve(b, model: large, tokens: 80)
        #expect(!reserved3, "needs 5 more, 3 free")
        #expect(kv.pageTable(b).count == 5, "a failed reservation changes nothing")
        #expect(kv.isConsistent())
        // Slots follow the page table: position 9 of `large` is page 1, offset 1.
        #expect(kv.slot(b, model: large, position: 9) == kv.pageTable(b)[1] * 8 + 1)
        kv.release(a)
        kv.release(b)
        #expect(kv.freePageCount == 10 && kv.isConsistent())
        #expect(kv.usedPagesByModel.values.allSatisfy { $0 == 0 })
    }

    @Test func reserveGrowsOnlyWhenNeeded() {
        var kv = KVCacheManager(pageCount: 4, tokensPerPageByModel: [small: 4])
        let a = SequenceID(1)
        let reserved4 = kv.reserve(a, model: small, tokens: 1)
        #expect(reserved4)
        let reserved5 = kv.reserve(a, model: small, tokens: 4)
        #expect(reserved5)
        #expect(kv.pageTable(a).count == 1)
        let reserved6 = kv.reserve(a, model: small, tokens: 5)
        #expect(reserved6)
        #expect(kv.pageTable(a).count == 2)
        #expect(kv.additionalPagesNeeded(a, model: small, tokens: 16) == 2)
    }
}

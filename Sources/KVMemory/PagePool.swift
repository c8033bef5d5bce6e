/// A pool of equally sized pages on one device. It hands out page numbers only; what a page
/// holds (which model, how many tokens) is decided by the caller. Allocation checks before it
/// acts: it either returns every page asked for or changes nothing.
public struct PagePool: Sendable {
    /// Pages in the pool.
    public let pageCount: Int
    /// Free page numbers, used as a stack so recently freed (cache-warm) pages are reused first.
    private var freePages: [Int32]

    /// A pool of `pageCount` free pages.
    public init(pageCount: Int) {
        precondition(pageCount >= 0)
        self.pageCount = pageCount
        self.freePages = (0..<Int32(pageCount)).reversed()
    }

    /// Pages not held by anyone.
    public var freePageCount: Int { freePages.count }

    /// Pages currently handed out.
    public var usedPageCount: Int { pageCount - freePages.count }

    /// `count` pages, or nil (and no change) when fewer are free.
    public mutating func allocate(_ count: Int) -> [Int32]? {
        guard count <= freePages.count else { return nil }
        let pages = Array(freePages.suffix(count).reversed())
        freePages.removeLast(count)
        return pages
    }

    /// Returns pages to the pool.
    public mutating func release(_ pages: [Int32]) {
        freePages.append(contentsOf: pages.reversed())
        precondition(freePages.count <= pageCount, "page released twice")
    }
}

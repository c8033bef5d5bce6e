import LLMuxCore

/// A byte-pair-encoding model (`model.type == "BPE"`): vocabulary, ranked merges and the
/// fallbacks for characters the vocabulary lacks.
struct BPEModel: Sendable {
    /// What a pair of adjacent tokens merges into, and how early that merge was learned.
    struct Merge: Sendable {
        let rank: Int32
        let result: TokenID
    }

    let vocab: [TokenKey: TokenID]
    let merges: [UInt64: Merge]
    let unknownID: TokenID?
    let fuseUnknown: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    /// `<0xNN>` token for each byte when `byte_fallback` is on and all 256 exist.
    let byteTokens: [TokenID]?

    init(_ node: JSONNode) throws {
        let type = try node["type"].optionalString() ?? "BPE"
        guard type == "BPE" else { throw node["type"].unsupported(type) }
        var vocab: [TokenKey: TokenID] = [:]
        for (token, idNode) in try node["vocab"].members() {
            let id = try idNode.int()
            guard id >= 0, id <= Int(Int32.max) else { throw idNode.invalid("token id \(id) is out of range") }
            vocab[TokenKey(token)] = TokenID(id)
        }
        self.vocab = vocab
        var merges: [UInt64: Merge] = [:]
        for (rank, entry) in try node["merges"].array().enumerated() {
            let (left, right) = try Self.mergePair(entry)
            guard let a = vocab[TokenKey(left)], let b = vocab[TokenKey(right)],
                  let merged = vocab[TokenKey(left + right)] else {
                throw entry.invalid("merge '\(left) \(right)' uses a token missing from model.vocab")
            }
            let key = Self.pairKey(a, b)
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), result: merged) }
        }
        self.merges = merges
        if let unk = try node["unk_token"].optionalString() { unknownID = vocab[TokenKey(unk)] } else { unknownID = nil }
        fuseUnknown = try node["fuse_unk"].bool(default: false)
        ignoreMerges = try node["ignore_merges"].bool(default: false)
        continuingSubwordPrefix = try node["continuing_subword_prefix"].optionalString()
        endOfWordSuffix = try node["end_of_word_suffix"].optionalString()
        if try node["byte_fallback"].bool(default: false) {
            let ids = (0..<256).compactMap { vocab[TokenKey(Self.byteTokenName(UInt8($0)))] }
            byteTokens = ids.count == 256 ? ids : nil
        } else {
            byteTokens = nil
        }
    }

    /// `"a b"` (original GPT-2 form) or `["a", "b"]` (current form).
    private static func mergePair(_ entry: JSONNode) throws -> (String, String) {
        if let line = entry.value as? String {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw entry.invalid("expected two tokens separated by one space") }
            return (String(parts[0]), String(parts[1]))
        }
        if let pair = entry.value as? [Any], pair.count == 2, let left = pair[0] as? String, let right = pair[1] as? String {
            return (left, right)
        }
        let pair = try entry.array()
        guard pair.count == 2 else { throw entry.invalid("expected a pair of tokens") }
        return (try pair[0].string(), try pair[1].string())
    }

    static func pairKey(_ a: TokenID, _ b: TokenID) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// `<0x0A>` style name of a byte token.
    static func byteTokenName(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x\(hex.count == 1 ? "0" + hex : hex)>"
    }

    /// Appends the tokens of one pre-tokenized word.
    func tokenize(_ word: String, into output: inout [TokenID]) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocab[TokenKey(word)] {
            output.append(id)
            return
        }
        var symbols = initialSymbols(word)
        mergeAll(&symbols)
        output.append(contentsOf: symbols)
    }

    /// One symbol per character, with byte / unknown fallbacks, mirroring the Rust `merge_word`
    /// (including its quirk that a pending unknown is emitted after byte-fallback tokens).
    private func initialSymbols(_ word: String) -> [TokenID] {
        var symbols: [TokenID] = []
        symbols.reserveCapacity(word.utf8.count)
        var pendingUnknown = false
        let scalars = word.unicodeScalars
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            let next = scalars.index(after: index)
            var text = String(Character(scalar))
            if index != scalars.startIndex, let prefix = continuingSubwordPrefix { text = prefix + text }
            if next == scalars.endIndex, let suffix = endOfWordSuffix { text += suffix }
            index = next
            if let id = vocab[TokenKey(text)] {
                if pendingUnknown, let unk = unknownID { symbols.append(unk) }
                pendingUnknown = false
                symbols.append(id)
                continue
            }
            if let byteTokens {
                for byte in text.utf8 { symbols.append(byteTokens[Int(byte)]) }
                continue
            }
            guard let unk = unknownID else { continue }
            if pendingUnknown, !fuseUnknown { symbols.append(unk) }
            pendingUnknown = true
        }
        if pendingUnknown, let unk = unknownID { symbols.append(unk) }
        return symbols
    }

    /// Applies merges lowest rank first (leftmost on ties) with a heap, as the Rust `merge_all`.
    private func mergeAll(_ symbols: inout [TokenID]) {
        let count = symbols.count
        guard count > 1 else { return }
        var prev = [Int](repeating: -1, count: count)
        var next = [Int](repeating: -1, count: count)
        var alive = [Bool](repeating: true, count: count)
        var heap = MergeHeap()
        for i in 0..<count {
            prev[i] = i - 1
            next[i] = i + 1 < count ? i + 1 : -1
            if i + 1 < count, let merge = merges[Self.pairKey(symbols[i], symbols[i + 1])] {
                heap.push(.init(rank: merge.rank, position: Int32(i), result: merge.result))
            }
        }
        while let top = heap.pop() {
            let position = Int(top.position)
            guard alive[position] else { continue }
            let right = next[position]
            guard right >= 0 else { continue }
            // A stale entry: one side has changed since it was queued.
            guard let merge = merges[Self.pairKey(symbols[position], symbols[right])], merge.result == top.result else {
                continue
            }
            symbols[position] = merge.result
            alive[right] = false
            let after = next[right]
            next[position] = after
            if after >= 0 { prev[after] = position }
            let before = prev[position]
            if before >= 0, let merge = merges[Self.pairKey(symbols[before], symbols[position])] {
                heap.push(.init(rank: merge.rank, position: Int32(before), result: merge.result))
            }
            if after >= 0, let merge = merges[Self.pairKey(symbols[position], symbols[after])] {
                heap.push(.init(rank: merge.rank, position: Int32(position), result: merge.result))
            }
        }
        var kept: [TokenID] = []
        kept.reserveCapacity(count)
        var i = 0
        while i >= 0 {
            kept.append(symbols[i])
            i = next[i]
        }
        symbols = kept
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
struct MergeHeap {
    struct Entry {
        let rank: Int32
        let position: Int32
        let result: TokenID

        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var items: [Entry] = []

    mutating func push(_ entry: Entry) {
        items.append(entry)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < items.count, items[left].precedes(items[best]) { best = left }
                if right < items.count, items[right].precedes(items[best]) { best = right }
                if best == parent { break }
                items.swapAt(parent, best)
                parent = best
            }
        }
        return first
    }
}

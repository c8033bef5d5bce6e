import CLLMuxKernels
import Foundation
import LLMuxCore
import Testing

// Naive Double references for every kernel in CLLMuxKernels.

typealias SplitMix = SplitMix64
extension SplitMix64 {
    init(_ seed: UInt64) { self.init(seed: seed) }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in float() * scale } }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

let f32Code = Int32(LLMUX_F32), f16Code = Int32(LLMUX_F16), bf16Code = Int32(LLMUX_BF16)

func bf16ToFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// Reference f32 -> bf16, round to nearest even, NaN stays NaN.
func floatToBF16(_ f: Float) -> UInt16 {
    if f.isNaN { return UInt16(f.bitPattern >> 16) | 0x40 }
    let u = f.bitPattern
    let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
    return UInt16(rounded >> 16)
}

/// Weights of a dtype: raw storage plus the exact f32 values it holds.
struct Weights {
    var raw: [UInt8]
    var values: [Float]
    init(_ src: [Float], dtype: Int32) {
        switch dtype {
        case bf16Code:
            let h = src.map(floatToBF16)
            values = h.map(bf16ToFloat)
            raw = h.withUnsafeBytes { Array($0) }
        case f16Code:
            let h = src.map { Float16($0) }
            values = h.map { Float($0) }
            raw = h.withUnsafeBytes { Array($0) }
        default:
            values = src
            raw = src.withUnsafeBytes { Array($0) }
        }
    }
}

func expectClose(_ got: Float, _ want: Double, tol: Double, _ what: @autoclosure () -> String) {
    let err = abs(Double(got) - want)
    #expect(err <= tol, "\(what()): got \(got) want \(want) err \(err) tol \(tol)")
}

// MARK: - matmul

func checkMatmul(M: Int, N: Int, K: Int, dtype: Int32, bias useBias: Bool, strided: Bool, seed: UInt64) -> Int {
    var rng = SplitMix(seed)
    let ldx = strided ? K + 3 : K, ldy = strided ? N + 5 : N
    let x = rng.floats(M * ldx)
    let w = Weights(rng.floats(N * K), dtype: dtype)
    let bias = rng.floats(N)
    var y = [Float](repeating: .nan, count: M * ldy)
    w.raw.withUnsafeBytes { wp in
        bias.withUnsafeBufferPointer { bp in
            llmux_matmul(x, Int32(ldx), wp.baseAddress, dtype, useBias ? bp.baseAddress : nil, &y, Int32(ldy),
                         Int32(M), Int32(N), Int32(K))
        }
    }
    var bad = 0
    for m in 0..<M {
        for n in 0..<N {
            var s = useBias ? Double(bias[n]) : 0, sa = abs(s)
            for k in 0..<K {
                let p = Double(x[m * ldx + k]) * Double(w.values[n * K + k])
                s += p; sa += abs(p)
            }
            let got = Double(y[m * ldy + n])
            if !(abs(got - s) <= 1e-5 * sa + 1e-6) {
                bad += 1
                if bad < 4 {
                    Issue.record("matmul M=\(M) N=\(N) K=\(K) dt=\(dtype) bias=\(useBias) strided=\(strided) [\(m),\(n)]: \(got) vs \(s)")
                }
            }
        }
        if strided { for n in N..<ldy { #expect(y[m * ldy + n].isNaN, "matmul wrote past N in a strided row") } }
    }
    return bad
}

@Test func matmulShapesAndDtypes() {
    var seed: UInt64 = 1
    var failures = 0
    for M in [1, 2, 3, 7, 16, 33, 64, 130] {
        for (N, K) in [(1, 5), (17, 33), (67, 259), (35, 8)] {
            for dtype in [f32Code, f16Code, bf16Code] {
                seed += 1
                let variant = Int(seed % 4)
                failures += checkMatmul(M: M, N: N, K: K, dtype: dtype, bias: variant & 1 == 1,
                                        strided: variant & 2 == 2, seed: seed)
            }
        }
    }
    #expect(failures == 0)
}

@Test func matmulLargerBlocked() {
    // Crosses the KC / MC / NR block edges of the packed GEMM and the 8-row GEMV tiles.
    #expect(checkMatmul(M: 150, N: 83, K: 600, dtype: bf16Code, bias: true, strided: true, seed: 99) == 0)
    #expect(checkMatmul(M: 1, N: 1029, K: 300, dtype: f32Code, bias: true, strided: false, seed: 98) == 0)
    #expect(checkMatmul(M: 2, N: 45, K: 1031, dtype: f16Code, bias: false, strided: true, seed: 97) == 0)
    // One x row takes the linear-row kernel below 4 KB of W row and the 8-row tile above it.
    #expect(checkMatmul(M: 1, N: 37, K: 1030, dtype: bf16Code, bias: true, strided: true, seed: 96) == 0)
    #expect(checkMatmul(M: 1, N: 37, K: 1030, dtype: f32Code, bias: true, strided: true, seed: 95) == 0)
    #expect(checkMatmul(M: 1, N: 19, K: 2051, dtype: bf16Code, bias: false, strided: false, seed: 94) == 0)
}

@Test func matmulZeroK() {
    let bias: [Float] = [1, 2, 3]
    var y = [Float](repeating: .nan, count: 6)
    let x: [Float] = [0]
    let w: [Float] = [0]
    llmux_matmul(x, 1, w, f32Code, bias, &y, 3, 2, 3, 0)
    #expect(y == [1, 2, 3, 1, 2, 3])
}

// MARK: - threads

@Test func threadCountsAgree() {
    var rng = SplitMix(5)
    let M = 70, N = 90, K = 300
    let x = rng.floats(M * K), w = Weights(rng.floats(N * K), dtype: bf16Code)
    func run(_ m: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * N)
        w.raw.withUnsafeBytes { llmux_matmul(x, Int32(K), $0.baseAddress, bf16Code, nil, &y, Int32(N), Int32(m), Int32(N), Int32(K)) }
        return y
    }
    let saved = llmux_get_num_threads()
    llmux_set_num_threads(1)
    #expect(llmux_get_num_threads() == 1)
    let a1 = run(M), b1 = run(1), c1 = run(3)
    let att1 = AttentionCase(nHeads: 4, nKV: 2, headDim: 24, blockSize: 4, seed: 3).run()
    llmux_set_num_threads(2)
    #expect(llmux_get_num_threads() == 2)
    let a2 = run(M), b2 = run(1), c2 = run(3)
    let att2 = AttentionCase(nHeads: 4, nKV: 2, headDim: 24, blockSize: 4, seed: 3).run()
    llmux_set_num_threads(saved)
    #expect(a1 == a2)
    #expect(b1 == b2)
    #expect(c1 == c2)
    #expect(att1.out == att2.out)
}

// MARK: - paged attention

struct AttentionCase {
    let nHeads: Int, nKV: Int, headDim: Int, blockSize: Int
    let seqs: [(nq: Int, ctx: Int)]
    let seed: UInt64

    init(nHeads: Int, nKV: Int, headDim: Int, blockSize: Int, seed: UInt64,
         seqs: [(nq: Int, ctx: Int)] = [(20, 27), (1, 13), (35, 35), (1, 1), (3, 40)]) {
        self.nHeads = nHeads; self.nKV = nKV; self.headDim = headDim; self.blockSize = blockSize
        self.seed = seed; self.seqs = seqs
    }

    struct Result { var out: [Float]; var ref: [Double]; var tol: Double }

    func run() -> Result {
        var rng = SplitMix(seed)
        let kvDim = nKV * headDim
        let pageStride = blockSize * kvDim + 7 // pages hold other data in between
        let maxBlocks = seqs.map { ($0.ctx + blockSize - 1) / blockSize }.max()!
        let nPages = seqs.reduce(0) { $0 + ($1.ctx + blockSize - 1) / blockSize } + 3
        var pages = Array(0..<nPages)
        for i in stride(from: nPages - 1, to: 0, by: -1) { pages.swapAt(i, rng.int(i + 1)) } // shuffled
        var tables = [Int32](repeating: -1, count: seqs.count * maxBlocks)
        var next = 0
        for (s, sq) in seqs.enumerated() {
            for b in 0..<(sq.ctx + blockSize - 1) / blockSize { tables[s * maxBlocks + b] = Int32(pages[next]); next += 1 }
        }
        // Whole-context K/V per sequence, written into the cache through llmux_kv_write.
        let rowStride = kvDim + 5
        var kCache = [Float](repeating: .nan, count: nPages * pageStride)
        var vCache = kCache
        var keys: [[Float]] = [], vals: [[Float]] = []
        for (s, sq) in seqs.enumerated() {
            let k = rng.floats(sq.ctx * rowStride), v = rng.floats(sq.ctx * rowStride)
            keys.append(k); vals.append(v)
            let slots = (0..<sq.ctx).map { t in tables[s * maxBlocks + t / blockSize] * Int32(blockSize) + Int32(t % blockSize) }
            llmux_kv_write(k, v, Int32(rowStride), &kCache, &vCache, slots, Int32(sq.ctx), Int32(nKV), Int32(headDim),
                           Int32(blockSize), Int64(pageStride))
        }
        var queryStart: [Int32] = [0]
        for sq in seqs { queryStart.append(queryStart.last! + Int32(sq.nq)) }
        let nTok = Int(queryStart.last!)
        let qStride = nHeads * headDim + 3
        let q = rng.floats(nTok * qStride)
        var out = [Float](repeating: .nan, count: nTok * nHeads * headDim)
        let scale = Float(1 / Double(headDim).squareRoot())
        let ctxLens = seqs.map { Int32($0.ctx) }
        llmux_paged_attention(q, Int32(qStride), &out, kCache, vCache, Int32(nHeads), Int32(nKV), Int32(headDim),
                              Int32(blockSize), Int64(pageStride), Int32(seqs.count), queryStart, ctxLens, tables,
                              Int32(maxBlocks), scale)
        // Reference.
        var ref = [Double](repeating: 0, count: out.count)
        let group = nHeads / nKV
        for (s, sq) in seqs.enumerated() {
            for i in 0..<sq.nq {
                let tok = Int(queryStart[s]) + i, pos = sq.ctx - sq.nq + i
                for h in 0..<nHeads {
                    let kvh = h / group
                    var scores = [Double](repeating: 0, count: pos + 1)
                    for t in 0...pos {
                        var d = 0.0
                        for j in 0..<headDim {
                            d += Double(q[tok * qStride + h * headDim + j]) * Double(keys[s][t * rowStride + kvh * headDim + j])
                        }
                        scores[t] = d * Double(scale)
                    }
                    let mx = scores.max()!
                    let e = scores.map { Foundation.exp($0 - mx) }
                    let sum = e.reduce(0, +)
                    for j in 0..<headDim {
                        var acc = 0.0
                        for t in 0...pos { acc += e[t] * Double(vals[s][t * rowStride + kvh * headDim + j]) }
                        ref[tok * nHeads * headDim + h * headDim + j] = acc / sum
                    }
                }
            }
        }
        return Result(out: out, ref: ref, tol: 2e-5)
    }
}

@Test(arguments: [(4, 2, 24, 4), (4, 4, 16, 16), (6, 1, 40, 5), (8, 2, 64, 16), (2, 1, 7, 3)])
func pagedAttention(_ cfg: (Int, Int, Int, Int)) {
    let r = AttentionCase(nHeads: cfg.0, nKV: cfg.1, headDim: cfg.2, blockSize: cfg.3, seed: UInt64(cfg.2 * 31 + cfg.3)).run()
    var bad = 0
    for i in 0..<r.out.count where !(abs(Double(r.out[i]) - r.ref[i]) <= r.tol) {
        bad += 1
        if bad < 4 { Issue.record("attention \(cfg) [\(i)]: \(r.out[i]) vs \(r.ref[i])") }
    }
    #expect(bad == 0)
}

@Test func pagedAttentionLongDecode() {
    // Long contexts cross several key chunks; a decode batch only.
    let r = AttentionCase(nHeads: 4, nKV: 1, headDim: 32, blockSize: 16, seed: 77,
                          seqs: [(1, 300), (1, 129), (2, 200)]).run()
    var maxErr = 0.0
    for i in 0..<r.out.count { maxErr = max(maxErr, abs(Double(r.out[i]) - r.ref[i])) }
    #expect(maxErr <= r.tol)
}

// MARK: - norms, rope, activations

@Test(arguments: [f32Code, f16Code, bf16Code])
func rmsnorms(_ dtype: Int32) {
    var rng = SplitMix(UInt64(11 + dtype))
    for (rows, dim) in [(3, 7), (2, 64), (40, 1000)] {
        let x = rng.floats(rows * dim, scale: 3), r0 = rng.floats(rows * dim)
        let w = Weights(rng.floats(dim), dtype: dtype)
        let eps: Float = 1e-5
        var y = [Float](repeating: 0, count: rows * dim)
        var res = r0
        var y2 = y
        w.raw.withUnsafeBytes { wp in
            llmux_rmsnorm(x, wp.baseAddress, dtype, &y, Int32(rows), Int32(dim), eps)
            llmux_add_rmsnorm(&res, x, wp.baseAddress, dtype, &y2, Int32(rows), Int32(dim), eps)
        }
        for r in 0..<rows {
            for (src, out, what) in [(Array(x[(r * dim)..<((r + 1) * dim)]), y, "rmsnorm"),
                                     ((0..<dim).map { r0[r * dim + $0] + x[r * dim + $0] }, y2, "add_rmsnorm")] {
                let ms = src.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(dim)
                let inv = 1 / (ms + Double(eps)).squareRoot()
                for i in 0..<dim {
                    let want = Double(src[i]) * inv * Double(w.values[i])
                    expectClose(out[r * dim + i], want, tol: 1e-5 * max(1, abs(want)), "\(what) r\(r) i\(i)")
                }
            }
            for i in 0..<dim { #expect(res[r * dim + i] == r0[r * dim + i] + x[r * dim + i]) }
        }
    }
}

@Test func addInplace() {
    var rng = SplitMix(4)
    let a = rng.floats(37), b = rng.floats(37)
    var r = a
    llmux_add_inplace(&r, b, 37)
    #expect(r == zip(a, b).map { $0 + $1 })
}

@Test func ropeMatchesRotateHalf() {
    var rng = SplitMix(21)
    let nTok = 5, nHeads = 3, headDim = 64, rowStride = nHeads * headDim + 10
    let positions: [Int32] = [0, 1, 17, 1000, 8191]
    let invFreq = (0..<headDim / 2).map { Float(1 / pow(500000.0, Double(2 * $0) / Double(headDim))) }
    let x0 = rng.floats(nTok * rowStride)
    var x = x0
    llmux_rope(&x, Int32(rowStride), positions, Int32(nTok), Int32(nHeads), Int32(headDim), invFreq)
    let half = headDim / 2
    for t in 0..<nTok {
        for h in 0..<nHeads {
            let base = t * rowStride + h * headDim
            for j in 0..<half {
                let angle = Double(Float(positions[t]) * invFreq[j]) // fp32 product, like PyTorch
                let c = Foundation.cos(angle), s = Foundation.sin(angle)
                let x1 = Double(x0[base + j]), x2 = Double(x0[base + j + half])
                expectClose(x[base + j], x1 * c - x2 * s, tol: 2e-6, "rope t\(t) h\(h) j\(j)")
                expectClose(x[base + j + half], x2 * c + x1 * s, tol: 2e-6, "rope t\(t) h\(h) j\(j + half)")
            }
        }
        for i in (nHeads * headDim)..<rowStride { #expect(x[t * rowStride + i] == x0[t * rowStride + i]) }
    }
}

@Test func siluMul() {
    var rng = SplitMix(8)
    for (rows, inter) in [(1, 37), (2, 1000), (70, 600)] {
        let ld = 2 * inter + 5
        let gu = rng.floats(rows * ld, scale: 8)
        var out = [Float](repeating: 0, count: rows * inter)
        llmux_silu_mul(gu, Int32(ld), &out, Int32(rows), Int32(inter))
        for r in 0..<rows {
            for i in 0..<inter {
                let g = Double(gu[r * ld + i]), u = Double(gu[r * ld + inter + i])
                let want = g / (1 + Foundation.exp(-g)) * u
                expectClose(out[r * inter + i], want, tol: 1e-5 * max(1, abs(want)), "silu r\(r) i\(i)")
            }
        }
    }
}

@Test func softmaxes() {
    var rng = SplitMix(9)
    for (rows, n) in [(1, 5), (3, 1000), (64, 700)] {
        let x0 = rng.floats(rows * n, scale: 20)
        var x = x0
        llmux_softmax(&x, Int32(rows), Int32(n))
        for r in 0..<rows {
            let row = x0[(r * n)..<((r + 1) * n)].map(Double.init)
            let mx = row.max()!
            let sum = row.reduce(0) { $0 + Foundation.exp($1 - mx) }
            for i in 0..<n { expectClose(x[r * n + i], Foundation.exp(row[i] - mx) / sum, tol: 1e-6, "softmax") }
            if rows == 1 || r == 0 {
                var lp = [Float](repeating: 0, count: n)
                Array(x0[(r * n)..<((r + 1) * n)]).withUnsafeBufferPointer { llmux_log_softmax($0.baseAddress, &lp, Int32(n)) }
                for i in 0..<n { expectClose(lp[i], row[i] - mx - Foundation.log(sum), tol: 1e-5 * max(1, abs(row[i] - mx)), "log_softmax") }
            }
        }
    }
}

@Test(arguments: [f32Code, f16Code, bf16Code])
func embeddingGather(_ dtype: Int32) {
    var rng = SplitMix(12)
    let vocab = 50, dim = 19
    let table = Weights(rng.floats(vocab * dim), dtype: dtype)
    let ids: [Int32] = [3, 0, 49, 3, 17]
    var out = [Float](repeating: 0, count: ids.count * dim)
    table.raw.withUnsafeBytes { llmux_embedding(ids, Int32(ids.count), $0.baseAddress, dtype, Int32(dim), &out) }
    for (t, id) in ids.enumerated() {
        #expect(Array(out[(t * dim)..<((t + 1) * dim)]) == Array(table.values[(Int(id) * dim)..<((Int(id) + 1) * dim)]))
    }
}

// MARK: - conversions

@Test func bf16Conversions() {
    // Every finite bf16 survives a round trip; rounding of random floats matches the RNE reference.
    var all = [UInt16](), widened = [Float](repeating: 0, count: 65536)
    for h in 0...UInt16.max { all.append(h) }
    llmux_convert_to_f32(all, bf16Code, &widened, 65536)
    var back = [UInt16](repeating: 0, count: 65536)
    llmux_f32_to_bf16(widened, &back, 65536)
    for h in 0..<65536 {
        #expect(widened[h].bitPattern == UInt32(h) << 16 || widened[h].isNaN)
        if widened[h].isNaN { #expect(bf16ToFloat(back[h]).isNaN) } else { #expect(back[h] == all[h]) }
    }
    var rng = SplitMix(13)
    var xs = (0..<4099).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
    // Exact ties: 1 + 2^-8 -> 1 (even), 1 + 3*2^-8 -> 1 + 2^-6 (even), negative tie, huge values, inf, NaN.
    xs += [1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8), .greatestFiniteMagnitude, .infinity, -.infinity, .nan, 0, -0.0,
           .leastNonzeroMagnitude]
    var out = [UInt16](repeating: 0, count: xs.count)
    llmux_f32_to_bf16(xs, &out, xs.count)
    for i in 0..<xs.count {
        if xs[i].isNaN { #expect(bf16ToFloat(out[i]).isNaN) } else { #expect(out[i] == floatToBF16(xs[i]), "bf16(\(xs[i]))") }
    }
    let n = xs.count
    #expect(out[n - 10] == 0x3F80 && out[n - 9] == 0x3F82 && out[n - 8] == 0xBF80)
    #expect(out[n - 7] == 0x7F80) // max float rounds up to inf
}

@Test func f16Conversions() {
    var all = [UInt16](), widened = [Float](repeating: 0, count: 65536)
    for h in 0...UInt16.max { all.append(h) }
    llmux_convert_to_f32(all, f16Code, &widened, 65536)
    var back = [UInt16](repeating: 0, count: 65536)
    llmux_f32_to_f16(widened, &back, 65536)
    for h in 0..<65536 {
        let ref = Float(Float16(bitPattern: all[h]))
        if ref.isNaN {
            #expect(widened[h].isNaN); #expect(Float16(bitPattern: back[h]).isNaN)
        } else {
            #expect(widened[h] == ref); #expect(back[h] == all[h])
        }
    }
    var rng = SplitMix(14)
    var xs = (0..<4099).map { _ in rng.float() * Float(1 << rng.int(20)) }
    xs += (0..<500).map { _ in rng.float() * 0x1p-14 } // subnormal range
    xs += [1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519.99, 65520, 1e6, -1e6, 0x1p-25, 0x1p-25 * 1.0001, .infinity, .nan]
    var out = [UInt16](repeating: 0, count: xs.count)
    llmux_f32_to_f16(xs, &out, xs.count)
    for i in 0..<xs.count {
        let want = Float16(xs[i])
        if want.isNaN { #expect(Float16(bitPattern: out[i]).isNaN) } else { #expect(out[i] == want.bitPattern, "f16(\(xs[i]))") }
    }
    // Same values through the scalar tail (odd lengths, one at a time).
    for x in xs.suffix(11) {
        var o: UInt16 = 0
        llmux_f32_to_f16([x], &o, 1)
        let want = Float16(x)
        if want.isNaN { #expect(Float16(bitPattern: o).isNaN) } else { #expect(o == want.bitPattern, "scalar f16(\(x))") }
    }
}

@Test func simdLevelIsReported() {
    let level = llmux_simd_level()
    #expect(level == 0 || level == 1)
    #expect(llmux_get_num_threads() >= 1)
}

// MARK: - benchmark (opt-in)

@Test(.enabled(if: ProcessInfo.processInfo.environment["LLMUX_BENCH"] == "1"))
func bench() {
    var buf = [CChar](repeating: 0, count: 16384)
    let n = llmux_bench_kernels(&buf, buf.count)
    #expect(n > 0)
    let report = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    print(report)
}

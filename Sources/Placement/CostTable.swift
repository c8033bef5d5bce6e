/// Where a cost table's figures come from.
public enum CostSource: String, Sendable, Codable {
    /// Timed on the device by `llmux profile`.
    case measured
    /// Computed from FLOPs, bytes and the device's peaks (`Roofline`), until someone measures.
    case roofline
}

/// Job latencies of one model on one mesh size, on a grid, for interpolation.
///
/// - prefill: a prompt chunk of `tokens` tokens (attention over the chunk itself), by SM share;
/// - decode: one step of `batch` sequences, one new token each, attending to `context` tokens.
public struct CostEntry: Sendable, Codable, Equatable {
    /// The model's serving name or shape name (lookup tries the serving name first).
    public var model: String
    /// GPUs in the mesh (tensor parallel degree); 1 on the CPU.
    public var meshSize: Int
    /// SM shares profiled, ascending (only 1.0 on the CPU, which has no SM partitions).
    public var smShares: [Double]
    /// Prompt-chunk lengths, ascending.
    public var prefillTokens: [Double]
    /// Seconds, `[share][tokens]`.
    public var prefillSeconds: [[Double]]
    /// Decode batch sizes, ascending.
    public var decodeBatches: [Double]
    /// Decode context lengths, ascending.
    public var decodeContexts: [Double]
    /// Seconds, `[share][batch][context]`.
    public var decodeSeconds: [[[Double]]]
    /// `prefillSeconds` with cold caches: each run starts after the CPU caches were filled with
    /// other data, as when another model's pass ran just before (on the CPU a small model's
    /// weights stay in the last-level cache between its own passes, but not across another
    /// model's). Nil where not measured (GPU tables): the warm figures serve.
    public var coldPrefillSeconds: [[Double]]?
    /// `decodeSeconds` with cold caches (see `coldPrefillSeconds`).
    public var coldDecodeSeconds: [[[Double]]]?

    /// An entry; arrays must match the grid.
    public init(model: String, meshSize: Int, smShares: [Double], prefillTokens: [Double], prefillSeconds: [[Double]],
                decodeBatches: [Double], decodeContexts: [Double], decodeSeconds: [[[Double]]],
                coldPrefillSeconds: [[Double]]? = nil, coldDecodeSeconds: [[[Double]]]? = nil) {
        self.model = model
        self.meshSize = meshSize
        self.smShares = smShares
        self.prefillTokens = prefillTokens
        self.prefillSeconds = prefillSeconds
        self.decodeBatches = decodeBatches
        self.decodeContexts = decodeContexts
        self.decodeSeconds = decodeSeconds
        self.coldPrefillSeconds = coldPrefillSeconds
        self.coldDecodeSeconds = coldDecodeSeconds
    }

    /// Seconds of a prefill chunk of `tokens` tokens at `share` of the SMs; `cold`: right after
    /// another model's pass (`coldPrefillSeconds`).
    public func prefill(tokens: Double, share: Double = 1, cold: Bool = false) -> Double {
        let grid = cold ? coldPrefillSeconds ?? prefillSeconds : prefillSeconds
        return Interpolation.overShares(smShares, share) { grid[$0] } value: { row in
            Interpolation.linear(prefillTokens, row, tokens)
        }
    }

    /// Seconds of a decode step of `batch` sequences with `context` tokens each at `share` of the
    /// SMs; `cold`: right after another model's pass (`coldDecodeSeconds`).
    public func decode(batch: Double, context: Double, share: Double = 1, cold: Bool = false) -> Double {
        guard batch > 0 else { return 0 }
        let grid = cold ? coldDecodeSeconds ?? decodeSeconds : decodeSeconds
        return Interpolation.overShares(smShares, share) { grid[$0] } value: { plane in
            let perBatch = plane.map { Interpolation.linear(decodeContexts, $0, context) }
            return Interpolation.linear(decodeBatches, perBatch, batch)
        }
    }

    /// Seconds of one fused pass (prefill chunks and decode tokens of one model in one flat batch,
    /// as the CPU runs a step): the dense work of all tokens, priced as a prefill of that many
    /// tokens, plus the decode tokens' attention over their contexts, priced as the difference
    /// between a decode step at `decodeContext` and one at the smallest profiled context.
    public func fused(prefillTokens p: Double, decodeBatch b: Double, decodeContext c: Double, share: Double = 1,
                      cold: Bool = false) -> Double {
        if b <= 0 { return p > 0 ? prefill(tokens: p, share: share, cold: cold) : 0 }
        if p <= 0 { return decode(batch: b, context: c, share: share, cold: cold) }
        let shortest = decodeContexts.first ?? 1
        let attention = max(0, decode(batch: b, context: c, share: share, cold: cold) - decode(batch: b, context: shortest, share: share, cold: cold))
        return prefill(tokens: p + b, share: share, cold: cold) + attention
    }

    /// Checks that every array matches the grid and is ascending; returns a message or nil.
    public func validationError() -> String? {
        func ascending(_ xs: [Double]) -> Bool { !xs.isEmpty && zip(xs, xs.dropFirst()).allSatisfy { $0 < $1 } }
        guard ascending(smShares), ascending(prefillTokens), ascending(decodeBatches), ascending(decodeContexts) else {
            return "\(model)@\(meshSize): grid axes must be non-empty and ascending"
        }
        guard prefillSeconds.count == smShares.count, prefillSeconds.allSatisfy({ $0.count == prefillTokens.count }),
              decodeSeconds.count == smShares.count,
              decodeSeconds.allSatisfy({ $0.count == decodeBatches.count && $0.allSatisfy { $0.count == decodeContexts.count } }) else {
            return "\(model)@\(meshSize): latency arrays do not match the grid"
        }
        if let cold = coldPrefillSeconds, cold.count != smShares.count || !cold.allSatisfy({ $0.count == prefillTokens.count }) {
            return "\(model)@\(meshSize): cold prefill latencies do not match the grid"
        }
        if let cold = coldDecodeSeconds, cold.count != smShares.count
            || !cold.allSatisfy({ $0.count == decodeBatches.count && $0.allSatisfy { $0.count == decodeContexts.count } }) {
            return "\(model)@\(meshSize): cold decode latencies do not match the grid"
        }
        return nil
    }
}

/// A device's job latencies for the models it may run, as written by `llmux profile` or
/// generated from a roofline.
public struct CostTable: Sendable, Codable, Equatable {
    /// Device kind (`cpu`, `h100`, `h200`).
    public var device: String
    /// Measured or roofline.
    public var source: CostSource
    /// Free text: how it was made, and what it does not cover (e.g. SM shares on the CPU).
    public var note: String
    /// One entry per model and mesh size.
    public var entries: [CostEntry]
    /// Seconds an engine step costs beyond its jobs (scheduling, bookkeeping, streaming), added
    /// once per simulated step; nil counts as 0.
    public var stepOverhead: Double?
    /// Seconds the engine adds per sequence in a step on top of `stepOverhead` (page tables,
    /// sampling bookkeeping, events); nil counts as 0.
    public var stepOverheadPerSequence: Double?

    /// A table.
    public init(device: String, source: CostSource, note: String, entries: [CostEntry], stepOverhead: Double? = nil,
                stepOverheadPerSequence: Double? = nil) {
        self.device = device
        self.source = source
        self.note = note
        self.entries = entries
        self.stepOverhead = stepOverhead
        self.stepOverheadPerSequence = stepOverheadPerSequence
    }

    /// The engine's own seconds in a step that carries `sequences` sequences.
    public func engineOverhead(sequences: Int) -> Double {
        (stepOverhead ?? 0) + Double(sequences) * (stepOverheadPerSequence ?? 0)
    }

    /// The entry for a model on a mesh size: by serving name, else by shape name; the exact mesh
    /// size, else the nearest profiled one (scaled by the size ratio, a crude stand-in).
    public func entry(model: String, shape: String? = nil, meshSize: Int) throws -> CostEntry {
        let candidates = entries.filter { $0.model == model }
        let pool = candidates.isEmpty ? entries.filter { $0.model == shape } : candidates
        guard !pool.isEmpty else {
            throw PlacementError.invalidInput("the \(source.rawValue) cost table for \(device) has no entry for model `\(model)`\(shape.map { " (shape `\($0)`)" } ?? ""); profile it with `llmux profile`")
        }
        if let exact = pool.first(where: { $0.meshSize == meshSize }) { return exact }
        let nearest = pool.min { abs($0.meshSize - meshSize) < abs($1.meshSize - meshSize) }!
        var scaled = nearest
        let factor = Double(nearest.meshSize) / Double(meshSize)
        scaled.meshSize = meshSize
        scaled.prefillSeconds = scaled.prefillSeconds.map { $0.map { $0 * factor } }
        scaled.decodeSeconds = scaled.decodeSeconds.map { $0.map { $0.map { $0 * factor } } }
        scaled.coldPrefillSeconds = scaled.coldPrefillSeconds?.map { $0.map { $0 * factor } }
        scaled.coldDecodeSeconds = scaled.coldDecodeSeconds?.map { $0.map { $0.map { $0 * factor } } }
        return scaled
    }
}

/// Piecewise-linear interpolation with linear extrapolation past the last point and clamping
/// before the first.
public enum Interpolation {
    /// y at x on the polyline (xs, ys); xs ascending. Past the end the last segment is extended
    /// (never below the last value); before the start the first value holds.
    public static func linear(_ xs: [Double], _ ys: [Double], _ x: Double) -> Double {
        precondition(xs.count == ys.count && !xs.isEmpty)
        if xs.count == 1 || x <= xs[0] { return ys[0] }
        var upper = 1
        while upper < xs.count - 1 && xs[upper] < x { upper += 1 }
        let (x0, x1, y0, y1) = (xs[upper - 1], xs[upper], ys[upper - 1], ys[upper])
        let value = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return x > xs[xs.count - 1] ? max(value, ys[ys.count - 1]) : value
    }

    /// Interpolates `value(slice(i))` between the two shares around `share` (clamped to the range).
    static func overShares<T>(_ shares: [Double], _ share: Double, slice: (Int) -> T, value: (T) -> Double) -> Double {
        let s = min(max(share, shares[0]), shares[shares.count - 1])
        var upper = 0
        while upper < shares.count - 1 && shares[upper] < s { upper += 1 }
        if upper == 0 || shares[upper] == s { return value(slice(upper)) }
        let (s0, s1) = (shares[upper - 1], shares[upper])
        let (v0, v1) = (value(slice(upper - 1)), value(slice(upper)))
        return v0 + (v1 - v0) * (s - s0) / (s1 - s0)
    }
}

/// Errors of placement, profiling and simulation, with a message a user can act on.
public enum PlacementError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Input that cannot be planned (no GPUs, a model larger than any mesh, a bad file).
    case invalidInput(String)
    /// The message.
    public var description: String {
        switch self {
        case .invalidInput(let message): return message
        }
    }
}

/// The peaks of a device kind and the fractions of them a real engine achieves, for the
/// analytic cost model that stands in until a device is profiled.
public struct DeviceSpec: Sendable, Codable, Equatable {
    /// Kind name (`h100`, `h200`, `cpu`).
    public var name: String
    /// Dense bf16 FLOP/s of one device.
    public var peakFlops: Double
    /// Memory copy bandwidth of one device, bytes/s.
    public var memoryBandwidth: Double
    /// Memory of one device, bytes.
    public var memoryBytes: Double
    /// Fraction of `peakFlops` large matmuls reach.
    public var computeEfficiency: Double
    /// Fraction of `memoryBandwidth` weight and KV streaming reaches.
    public var bandwidthEfficiency: Double
    /// SM share from which a memory-bound job gets the full bandwidth (below it, bandwidth
    /// shrinks in proportion): decode barely slows down with fewer SMs (MuxServe's Fig. 3).
    public var bandwidthSaturationShare: Double
    /// Fixed seconds per job (kernel launches, sampling, the host round trip).
    public var jobOverhead: Double
    /// All-reduce bus bandwidth between the GPUs of a host, bytes/s per GPU.
    public var linkBandwidth: Double
    /// Latency of one all-reduce, seconds.
    public var linkLatency: Double

    /// A device kind.
    public init(name: String, peakFlops: Double, memoryBandwidth: Double, memoryBytes: Double, computeEfficiency: Double,
                bandwidthEfficiency: Double, bandwidthSaturationShare: Double, jobOverhead: Double, linkBandwidth: Double,
                linkLatency: Double) {
        self.name = name
        self.peakFlops = peakFlops
        self.memoryBandwidth = memoryBandwidth
        self.memoryBytes = memoryBytes
        self.computeEfficiency = computeEfficiency
        self.bandwidthEfficiency = bandwidthEfficiency
        self.bandwidthSaturationShare = bandwidthSaturationShare
        self.jobOverhead = jobOverhead
        self.linkBandwidth = linkBandwidth
        self.linkLatency = linkLatency
    }

    /// H100 SXM 80 GB: 790 TFLOP/s dense bf16 and 3.0 TB/s copy bandwidth as measured on the
    /// project's machine; 60 % of the FLOPs and 80 % of the bandwidth achievable; NVLink
    /// all-reduce at 150 GB/s bus bandwidth and 10 µs.
    public static let h100 = DeviceSpec(
        name: "h100", peakFlops: 790e12, memoryBandwidth: 3.0e12, memoryBytes: 80e9, computeEfficiency: 0.6,
        bandwidthEfficiency: 0.8, bandwidthSaturationShare: 0.5, jobOverhead: 0.4e-3, linkBandwidth: 150e9, linkLatency: 10e-6)
    /// H200 141 GB: as the H100 with 4.3 TB/s copy bandwidth as measured here.
    public static let h200 = DeviceSpec(
        name: "h200", peakFlops: 790e12, memoryBandwidth: 4.3e12, memoryBytes: 141e9, computeEfficiency: 0.6,
        bandwidthEfficiency: 0.8, bandwidthSaturationShare: 0.5, jobOverhead: 0.4e-3, linkBandwidth: 150e9, linkLatency: 10e-6)
    /// A rough CPU (2 AVX2 cores): only for tests and first guesses; profile the real one.
    public static let cpu = DeviceSpec(
        name: "cpu", peakFlops: 100e9, memoryBandwidth: 10e9, memoryBytes: 24e9, computeEfficiency: 0.5,
        bandwidthEfficiency: 0.7, bandwidthSaturationShare: 1, jobOverhead: 0.2e-3, linkBandwidth: 10e9, linkLatency: 10e-6)

    /// The presets by name.
    public static let presets: [String: DeviceSpec] = ["h100": h100, "h200": h200, "cpu": cpu]
}

/// The analytic cost model: a job takes the longer of its compute time and its memory time at its
/// SM share, plus tensor-parallel all-reduces and a fixed overhead.
public struct Roofline: Sendable {
    /// The device.
    public let device: DeviceSpec
    /// KV element bytes (2 on GPUs).
    public let kvBytesPerElement: Int

    /// A roofline of `device`.
    public init(device: DeviceSpec, kvBytesPerElement: Int = 2) {
        self.device = device
        self.kvBytesPerElement = kvBytesPerElement
    }

    /// Seconds of a job of `tokens` new tokens, `attentionPairs` query-key pairs and
    /// `kvBytesRead` cached bytes read, on `meshSize` devices at `share` of the SMs.
    public func job(_ shape: ModelShape, tokens: Double, attentionPairs: Double, kvBytesRead: Double, meshSize: Int,
                    share: Double) -> Double {
        let n = Double(meshSize)
        let s = max(share, 0.01)
        let flops = shape.denseFlops(tokens: tokens) + 4 * Double(shape.layerCount * shape.headCount * shape.headDim) * attentionPairs
        let bytes = shape.streamedBytes + kvBytesRead + 2 * tokens * Double(shape.hiddenSize * shape.bytesPerWeight * shape.layerCount)
        let compute = flops / (n * device.peakFlops * device.computeEfficiency * s)
        let memory = bytes / (n * device.memoryBandwidth * device.bandwidthEfficiency * min(1, s / device.bandwidthSaturationShare))
        var communication = 0.0
        if meshSize > 1 {
            let perAllReduce = device.linkLatency + 2 * (n - 1) / n * tokens * Double(shape.hiddenSize * 2) / device.linkBandwidth
            communication = 2 * Double(shape.layerCount) * perAllReduce
        }
        return max(compute, memory) + communication + device.jobOverhead
    }

    /// Seconds of a prefill chunk of `tokens` tokens.
    public func prefill(_ shape: ModelShape, tokens: Double, meshSize: Int, share: Double) -> Double {
        job(shape, tokens: tokens, attentionPairs: tokens * (tokens + 1) / 2, kvBytesRead: 0, meshSize: meshSize, share: share)
    }

    /// Seconds of a decode step of `batch` sequences of `context` tokens.
    public func decode(_ shape: ModelShape, batch: Double, context: Double, meshSize: Int, share: Double) -> Double {
        let kv = batch * context * Double(shape.kvBytesPerToken(bytesPerElement: kvBytesPerElement))
        return job(shape, tokens: batch, attentionPairs: batch * context, kvBytesRead: kv, meshSize: meshSize, share: share)
    }

    /// Grids of roofline tables.
    public static let shareGrid: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    /// Prefill chunk sizes (tokens) at which `entry` prices prompt jobs.
    public static let tokenGrid: [Double] = [1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    /// Decode batch sizes (sequences per step) at which `entry` prices decode steps.
    public static let batchGrid: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    /// Decode context lengths (tokens each sequence attends to) at which `entry` prices decode steps.
    public static let contextGrid: [Double] = [16, 64, 256, 512, 1024, 2048, 4096]

    /// A cost entry for `shape` under `name` on `meshSize` devices, sampled on the grids.
    public func entry(name: String, shape: ModelShape, meshSize: Int) -> CostEntry {
        CostEntry(
            model: name, meshSize: meshSize, smShares: Self.shareGrid, prefillTokens: Self.tokenGrid,
            prefillSeconds: Self.shareGrid.map { s in Self.tokenGrid.map { prefill(shape, tokens: $0, meshSize: meshSize, share: s) } },
            decodeBatches: Self.batchGrid, decodeContexts: Self.contextGrid,
            decodeSeconds: Self.shareGrid.map { s in
                Self.batchGrid.map { b in Self.contextGrid.map { decode(shape, batch: b, context: $0, meshSize: meshSize, share: s) } }
            })
    }

    /// A roofline table for `models` (name, shape) on mesh sizes 1, 2, 4 and 8.
    public func table(models: [(String, ModelShape)], meshSizes: [Int] = [1, 2, 4, 8]) -> CostTable {
        var seen = Set<String>()
        var entries: [CostEntry] = []
        for (name, shape) in models where seen.insert(name).inserted {
            for size in meshSizes { entries.append(entry(name: name, shape: shape, meshSize: size)) }
        }
        let note = """
            Analytic roofline of \(device.name), not a measurement: max(FLOPs / (\(Int(device.computeEfficiency * 100)) % of \
            \(device.peakFlops / 1e12) TFLOP/s × share), bytes / (\(Int(device.bandwidthEfficiency * 100)) % of \
            \(device.memoryBandwidth / 1e12) TB/s × min(1, share / \(device.bandwidthSaturationShare)))) + all-reduces + \
            \(device.jobOverhead * 1e3) ms per job. Replace it with `llmux profile` on the device.
            """
        return CostTable(device: device.name, source: .roofline, note: note, entries: entries)
    }
}

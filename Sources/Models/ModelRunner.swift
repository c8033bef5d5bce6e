import Compute
import Foundation
import LLMuxCore

/// The `ModelExecutor` of a unit: the models' weights on one backend and the shared KV pool.
///
/// The pool is a single allocation cut into pages of equal bytes. A page of model m holds
/// `tokensPerPage(m)` tokens of every layer, laid out `[layer][key|value][token][kvHead][dim]`,
/// so a model with a smaller per-token KV footprint fits more tokens into the same page and any
/// page can serve any model (the "virtual page" design of DESIGN.md, with fixed-byte pages).
public final class ModelRunner: PipelinedExecutor {
    /// Descriptors of the loaded models.
    public let models: [ModelDescriptor]
    /// Pages in the pool.
    public let pageCount: Int
    /// Bytes of one page.
    public let pageBytes: Int
    /// The device the weights and the pool live on.
    let backend: any ComputeBackend
    private let decoders: [ModelID: DecoderModel]
    private let tokensPerPageByModel: [ModelID: Int]
    private let pool: Tensor
    /// Checks only: called with each sampled sequence's full logits row; a returned token
    /// replaces the sampled one (teacher forcing). Copies every logits row to the host.
    public var logitsTap: ((SequenceID, [Float]) -> TokenID?)?
    /// The plan between `begin` and `end`.
    private var begun: BegunPlan?
    private enum BegunPlan {
        case ready(StepResult)
        case queued([(sequences: [SequenceID], samples: any PendingSamples)])
    }

    /// Loads `checkpoints` onto `backend` with a KV pool of about `kvCacheBytes` bytes (nil: a
    /// device backend takes `freeMemoryFraction` of the memory left free after the weights). The
    /// largest per-token KV footprint gets `tokensPerPageOfLargest` tokens per page.
    public init(checkpoints: [(ModelID, Checkpoint)], backend: any ComputeBackend, kvCacheBytes requested: Int?,
                tokensPerPageOfLargest: Int = 16, freeMemoryFraction: Double = 0.85) throws {
        precondition(!checkpoints.isEmpty)
        self.backend = backend
        var decoders: [ModelID: DecoderModel] = [:]
        var descriptors: [ModelDescriptor] = []
        let elementBytes = backend.kvCacheDType.byteSize
        for (id, checkpoint) in checkpoints {
            let decoder = try DecoderModel(checkpoint: checkpoint, backend: backend)
            decoders[id] = decoder
            let config = checkpoint.config
            descriptors.append(ModelDescriptor(
                id: id, contextLength: config.maxPositionEmbeddings, vocabularySize: config.vocabSize,
                eosTokenIDs: checkpoint.eosTokenIDs,
                kvShape: KVCacheShape(layerCount: config.layerCount, kvHeadCount: config.kvHeadCount,
                                      headDim: config.headDim, bytesPerElement: elementBytes),
                parameterCount: config.parameterCount))
        }
        let largest = descriptors.map(\.kvShape.bytesPerToken).max()!
        let pageBytes = largest * tokensPerPageOfLargest
        self.pageBytes = pageBytes
        let kvCacheBytes: Int
        if let requested {
            kvCacheBytes = requested
        } else if let free = try backend.freeMemoryBytes() {
            kvCacheBytes = Int(Double(free) * freeMemoryFraction)
        } else {
            throw LLMuxError.outOfMemory("the KV-cache size must be given on \(backend.deviceName)")
        }
        pageCount = kvCacheBytes / pageBytes
        guard pageCount > 0 else {
            throw LLMuxError.outOfMemory("--kv-cache-memory of \(kvCacheBytes) bytes holds no page of \(pageBytes) bytes")
        }
        self.models = descriptors
        self.decoders = decoders
        self.tokensPerPageByModel = Dictionary(uniqueKeysWithValues: descriptors.map { ($0.id, pageBytes / $0.kvShape.bytesPerToken) })
        self.pool = try backend.makeTensor(rows: pageCount, columns: pageBytes / elementBytes, dtype: backend.kvCacheDType)
    }

    /// Tokens per page of `model`.
    public func tokensPerPage(for model: ModelID) -> Int { tokensPerPageByModel[model]! }

    /// Runs each model's jobs and samples. The CPU has no SM partitions, so a model's prefill and
    /// decode jobs are fused into one pass over its weights.
    public func execute(_ plan: StepPlan) throws -> StepResult {
        var result = StepResult()
        for job in Self.fuseByModel(plan.jobs) where !job.tokenIDs.isEmpty {
            let logits = try forward(job)
            let sampling = job.sequences.filter { $0.sample != nil }
            let tokens = try backend.sample(logits: logits, requests: sampling.map { $0.sample! })
            for (sequence, token) in zip(sampling, tokens) { result.samples[sequence.sequenceID] = token }
            if let logitsTap {
                let rows = try backend.download(logits)
                for (index, sequence) in sampling.enumerated() {
                    let row = Array(rows[index * logits.columns ..< (index + 1) * logits.columns])
                    if let forced = logitsTap(sequence.sequenceID, row) {
                        result.samples[sequence.sequenceID] = SampledToken(tokenID: forced, logprob: 0, top: [])
                    }
                }
            }
        }
        return result
    }

    /// Whether the backend queues work and returns (a GPU) rather than computing on the caller's thread.
    public var queuesAsynchronously: Bool { backend.queuesWork }

    /// Queues the plan's jobs and their sampling (`execute` split in two for `PipelinedExecutor`);
    /// with a logits tap (checks) it runs the plan to the end here.
    public func begin(_ plan: StepPlan) throws {
        precondition(begun == nil, "begin while a plan is queued")
        if logitsTap != nil {
            begun = .ready(try execute(plan))
            return
        }
        var queued: [(sequences: [SequenceID], samples: any PendingSamples)] = []
        for job in Self.fuseByModel(plan.jobs) where !job.tokenIDs.isEmpty {
            let logits = try forward(job)
            let sampling = job.sequences.filter { $0.sample != nil }
            let requests = sampling.map { $0.sample! }
            let samples: any PendingSamples = try (backend as? any PartitionedBackend)?.enqueueSample(logits: logits, requests: requests)
                ?? ReadySamples(try backend.sample(logits: logits, requests: requests))
            queued.append((sampling.map(\.sequenceID), samples))
        }
        begun = .queued(queued)
    }

    /// Waits for the plan of `begin` and returns its samples.
    public func end() throws -> StepResult {
        guard let plan = begun else { preconditionFailure("end without begin") }
        begun = nil
        switch plan {
        case .ready(let result):
            return result
        case .queued(let jobs):
            var result = StepResult()
            for job in jobs {
                try job.samples.wait()
                for (id, token) in zip(job.sequences, try job.samples.results()) { result.samples[id] = token }
            }
            return result
        }
    }

    /// The device address of the activation buffers `job` computes in, once a job like it has
    /// run (tests: jobs that may run at once must not share them).
    func activationAddress(for job: JobPlan) -> UInt64? { decoders[job.model]?.activations(for: job)?.residual.buffer.deviceAddress }

    /// Runs one job's forward pass on the backend's selected stream; returns the logits of its
    /// sampling sequences, in job order.
    func forward(_ job: JobPlan) throws -> Tensor {
        guard let decoder = decoders[job.model] else { throw LLMuxError.unknownModel(job.model.name) }
        return try decoder.forward(job, layerCache: layerCache(for: job.model))
    }

    /// Starts `job` as an eager forward pass whose layers are launched a few at a time
    /// (`PartitionedRunner`, which launches other jobs in between).
    func beginSliced(_ job: JobPlan) throws -> SlicedForward {
        guard let decoder = decoders[job.model] else { throw LLMuxError.unknownModel(job.model.name) }
        return SlicedForward(decoder: decoder, pass: try decoder.beginEager(job, layerCache: layerCache(for: job.model)))
    }

    /// Where each layer of `model`'s pages lies in the pool.
    private func layerCache(for model: ModelID) -> (Int) -> PagedKVLayer {
        let shape = models.first { $0.id == model }!.kvShape
        let tokensPerPage = tokensPerPageByModel[model]!
        let layerBytes = tokensPerPage * shape.kvHeadCount * shape.headDim * pool.dtype.byteSize
        let (base, dtype, stride) = (pool.address, pool.dtype, pool.rowStride)
        return { layer in
            let keys = base + 2 * layer * layerBytes
            return PagedKVLayer(keys: keys, values: keys + layerBytes, dtype: dtype, tokensPerPage: tokensPerPage, pageStride: stride)
        }
    }

    /// The natural log-probability of `tokens[i + 1]` given `tokens[0...i]`, for every i: one
    /// prefill of `tokens` at positions 0..<count through the first pages of the pool, then the
    /// log-softmax of every logits row (computed on the backend, normalised on the host in double
    /// precision). Uses the KV pool, so it must not run while sequences hold pages (call it on a
    /// runner of its own, or between requests).
    public func nextTokenLogProbs(model: ModelID, tokens: [TokenID]) throws -> [Double] {
        guard let decoder = decoders[model] else { throw LLMuxError.unknownModel(model.name) }
        guard tokens.count >= 2 else { return [] }
        let tokensPerPage = tokensPerPageByModel[model]!
        let pages = (tokens.count + tokensPerPage - 1) / tokensPerPage
        guard pages <= pageCount else {
            throw LLMuxError.outOfMemory("a window of \(tokens.count) tokens needs \(pages) KV pages; the pool has \(pageCount)")
        }
        let job = JobPlan(model: model, phase: .prefill, tokenIDs: tokens, positions: (0..<tokens.count).map { Int32($0) },
                          slotMapping: (0..<tokens.count).map { Int32($0) },
                          sequences: [SequencePlan(sequenceID: SequenceID(0), queryStart: 0, queryCount: tokens.count,
                                                   contextLength: tokens.count, pageTable: (0..<pages).map { Int32($0) },
                                                   sample: nil)])
        let logits = try backend.download(try decoder.forwardAllLogits(job, layerCache: layerCache(for: model)))
        let vocabulary = decoder.config.vocabSize
        return (0..<tokens.count - 1).map { row in
            let values = logits[row * vocabulary ..< (row + 1) * vocabulary]
            let largest = Double(values.max()!)
            let sum = values.reduce(0.0) { $0 + exp(Double($1) - largest) }
            return Double(values[values.startIndex + Int(tokens[row + 1])]) - largest - log(sum)
        }
    }

    /// One job per model, concatenating the flat batches in plan order.
    static func fuseByModel(_ jobs: [JobPlan]) -> [JobPlan] {
        var fused: [JobPlan] = []
        for job in jobs {
            guard let index = fused.firstIndex(where: { $0.model == job.model }) else {
                fused.append(job)
                continue
            }
            let offset = fused[index].tokenIDs.count
            fused[index].tokenIDs += job.tokenIDs
            fused[index].positions += job.positions
            fused[index].slotMapping += job.slotMapping
            fused[index].sequences += job.sequences.map {
                var sequence = $0
                sequence.queryStart += offset
                return sequence
            }
            if job.phase == .prefill { fused[index].phase = .prefill }
        }
        return fused
    }
}

/// A job's forward pass launched in slices of layers: `advance` until it returns true, then
/// `finish` for the logits of its sampled rows.
final class SlicedForward {
    private let decoder: DecoderModel
    private let pass: EagerForward

    init(decoder: DecoderModel, pass: EagerForward) {
        self.decoder = decoder
        self.pass = pass
    }

    /// The job.
    var job: JobPlan { pass.job }

    /// Launches up to `layers` more layers; true once all are launched.
    func advance(layers: Int) throws -> Bool { try decoder.launchLayers(of: pass, count: layers) }

    /// The logits of the sampled rows (after the last `advance`).
    func finish() throws -> Tensor { try decoder.finishEager(pass) }
}

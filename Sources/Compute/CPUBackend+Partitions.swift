import LLMuxCore

/// The CPU has no SMs; with `emulatedMultiprocessors` > 0 it accepts SM partitionings anyway
/// (granted in groups of 8 like Hopper's) and runs every job at once on the calling thread, so
/// that the asynchronous executor and the schedulers' partition plans are tested without a GPU.
extension CPUBackend: PartitionedBackend {
    /// `emulatedMultiprocessors`: 0 unless set at init, and with 0 partitions are refused.
    public var multiprocessorCount: Int { emulatedMultiprocessors }

    /// Only computes the grant (multiples of 8, the last partition takes the rest; no streams are made);
    /// throws unless `emulatedMultiprocessors` > 0.
    public func configurePartitions(_ requested: [[Int]], streamsPerPartition: Int) throws -> [[Int]] {
        guard emulatedMultiprocessors > 0 else { throw LLMuxError.engine("the CPU backend has no SM partitions") }
        return requested.enumerated().map { index, counts in
            if index == 0 || counts.count <= 1 { return [emulatedMultiprocessors] }
            var left = emulatedMultiprocessors
            return counts.enumerated().map { position, wanted in
                let granted = position == counts.count - 1 ? left : min(left, (wanted + 7) / 8 * 8)
                left -= granted
                return granted
            }
        }
    }

    /// Does nothing: every call runs at once on the calling thread.
    public func selectStream(partitioning: Int, partition: Int, stream: Int) throws {}
    /// Does nothing: there are no streams.
    public func selectMainStream() {}
    /// Always 0: there is one stream in effect and no graphs to keep apart.
    public var selectedStreamKey: Int { 0 }

    /// Samples at once on the calling thread and hands the tokens back as `ReadySamples`.
    public func enqueueSample(logits: Tensor, requests: [SampleRequest]) throws -> any PendingSamples {
        ReadySamples(sample(logits: logits, requests: requests))
    }
}

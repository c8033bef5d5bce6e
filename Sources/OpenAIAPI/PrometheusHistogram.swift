/// A Prometheus histogram's state: observations per bucket (not yet cumulative; the exposition
/// adds them up), their sum and count. Shared by `llmux serve` and `llmux gateway` metrics.
public struct PrometheusHistogram: Sendable, Equatable {
    /// Upper bounds of the buckets, ascending (the `+Inf` bucket is implicit).
    public let bounds: [Double]
    /// Observations that fell into each bucket (values above the last bound count only in `count`).
    public private(set) var counts: [Int]
    /// Sum of all observations.
    public private(set) var sum = 0.0
    /// Number of observations.
    public private(set) var count = 0

    /// An empty histogram over `bounds`.
    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count)
    }

    /// Records one value in the first bucket whose bound is at least the value.
    public mutating func observe(_ value: Double) {
        sum += value
        count += 1
        var low = 0, high = bounds.count
        while low < high {
            let mid = (low + high) / 2
            if value <= bounds[mid] { high = mid } else { low = mid + 1 }
        }
        if low < counts.count { counts[low] += 1 }
    }
}

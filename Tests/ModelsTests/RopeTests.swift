import Foundation
import Models
import Testing

/// Inverse frequencies against the formulas of transformers' `modeling_rope_utils.py`, recomputed
/// here step by step.
@Suite struct RopeTests {
    /// `_compute_default_rope_parameters`: inv_freq[i] = 1 / base^(2i / dim).
    func plain(base: Double, dim: Int) -> [Double] {
        (0..<dim / 2).map { 1 / pow(base, Double(2 * $0) / Double(dim)) }
    }

    @Test func defaultRope() {
        let config = ModelPreset.all["tiny-llama"]!.config   // head_dim 16, theta 10000
        let freqs = config.inverseFrequencies()
        #expect(freqs.count == 8)
        #expect(freqs[0] == 1)
        #expect(freqs == plain(base: 10000, dim: 16).map { Float($0) })
        #expect(abs(freqs[1] - 0.31622776) < 1e-7)   // 10000^(-2/16) = 10^(-1/2)
    }

    @Test func linearScalingDividesByFactor() {
        // `_compute_linear_scaling_rope_parameters`: inv_freq /= factor.
        var config = ModelPreset.all["tiny-mistral"]!.config   // head_dim 32
        config.ropeScaling = .linear(factor: 4)
        #expect(config.inverseFrequencies() == plain(base: 10000, dim: 32).map { Float($0 / 4) })
    }

    @Test func llama3Scaling() {
        // `_compute_llama3_parameters` with Llama 3.2's factor 32, low 1, high 4, original 8192.
        let config = ModelPreset.all["llama3.2-1b"]!.config
        let freqs = config.inverseFrequencies()
        let base = plain(base: 500_000, dim: 64)
        let lowFreqWavelen = 8192.0 / 1, highFreqWavelen = 8192.0 / 4
        var kept = 0, divided = 0, smoothed = 0
        for (i, inv) in base.enumerated() {
            let wavelen = 2 * Double.pi / inv
            let expected: Double
            if wavelen < highFreqWavelen {
                expected = inv; kept += 1
            } else if wavelen > lowFreqWavelen {
                expected = inv / 32; divided += 1
            } else {
                let smooth = (8192 / wavelen - 1) / (4 - 1)
                expected = (1 - smooth) * inv / 32 + smooth * inv; smoothed += 1
            }
            #expect(freqs[i] == Float(expected), "index \(i)")
        }
        // 2π·500000^(i/32) < 2048 for i ≤ 14, > 8192 for i ≥ 18: three frequencies are blended.
        #expect((kept, smoothed, divided) == (15, 3, 14))
        #expect(freqs[0] == 1 && freqs[31] == Float(base[31] / 32))
        #expect(freqs[16] < Float(base[16]) && freqs[16] > Float(base[16] / 32))
    }
}

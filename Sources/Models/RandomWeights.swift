#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Compute
import Dispatch
import Foundation

/// Fills weight buffers with seeded normal noise, in parallel and reproducibly: every chunk of
/// `chunkElements` values has its own generator seeded from (seed, tensor name, chunk index), so
/// the result does not depend on how many threads ran or in which order.
enum RandomWeights {
    /// Values per independently seeded chunk.
    static let chunkElements = 1 << 16

    /// Fills `buffer` (exactly `count` elements of `dtype`) with `mean + std * N(0, 1)`.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, dtype: DType, count: Int, name: String,
                     seed: UInt64, mean: Float, std: Float) {
        precondition(buffer.count == count * dtype.byteSize)
        let nameSeed = seed ^ fnv1a(name)
        let chunks = (count + chunkElements - 1) / chunkElements
        let target = SendableRawPointer(pointer: buffer.baseAddress)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * chunkElements
            let length = min(chunkElements, count - start)
            var rng = Xoshiro256(seed: nameSeed &+ UInt64(chunk) &* 0x9E37_79B9_7F4A_7C15)
            var values = [Float](repeating: 0, count: length)
            values.withUnsafeMutableBufferPointer { rng.fillNormal($0, mean: mean, std: std) }
            guard let base = target.pointer else { return }
            switch dtype {
            case .f32:
                let out = (base + start * 4).assumingMemoryBound(to: UInt32.self)
                for index in 0..<length { out[index] = values[index].bitPattern.littleEndian }
            case .bf16:
                let out = (base + start * 2).assumingMemoryBound(to: UInt16.self)
                for index in 0..<length { out[index] = HalfPrecision.bf16Bits(values[index]).littleEndian }
            case .f16:
                let out = (base + start * 2).assumingMemoryBound(to: UInt16.self)
                for index in 0..<length { out[index] = HalfPrecision.f16Bits(values[index]).littleEndian }
            }
        }
    }

    /// FNV-1a of the UTF-8 name: a hash that, unlike `hashValue`, is the same in every process.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash
    }
}

/// A raw pointer handed to `concurrentPerform` workers, each of which writes a disjoint range.
struct SendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer?
}

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64 as its authors recommend.
struct Xoshiro256 {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator whose four words come from splitmix64 of `seed`.
    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Normal samples by Box-Muller, two per pair of uniforms; both halves of the 64 bits are used.
    mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>, mean: Float, std: Float) {
        let scale: Float = 1.0 / 4_294_967_296.0
        var index = 0
        while index < out.count {
            let bits = next()
            // u1 in (0, 1] keeps log away from 0; u2 in [0, 1).
            let u1 = (Float(UInt32(truncatingIfNeeded: bits)) + 1) * scale
            let u2 = Float(UInt32(truncatingIfNeeded: bits >> 32)) * scale
            let radius = (-2 * logf(min(u1, 1))).squareRoot()
            let angle = 2 * Float.pi * u2
            out[index] = mean + std * radius * cosf(angle)
            if index + 1 < out.count { out[index + 1] = mean + std * radius * sinf(angle) }
            index += 2
        }
    }
}

/// Float to 16-bit conversions with round-to-nearest-even, written here (rather than taken from
/// the C kernels) so make-model has no dependency on kernel code.
enum HalfPrecision {
    /// bfloat16 bits of `value` (the upper half of the f32, rounded).
    static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x0040 }   // keep it a (quiet) NaN
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// IEEE half bits of `value`, overflowing to infinity and rounding subnormals correctly.
    static func f16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 31 { return sign | 0x7C00 }
        if halfExponent <= 0 {
            // Subnormal half (or zero): shift the implicit-one mantissa into place, rounding to even.
            if halfExponent < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - halfExponent)
            let half = mantissa >> shift
            let remainder = mantissa & ((1 << shift) - 1)
            let midpoint: UInt32 = 1 << (shift - 1)
            let rounded = half + ((remainder > midpoint || (remainder == midpoint && half & 1 == 1)) ? 1 : 0)
            return sign | UInt16(rounded)
        }
        let half = UInt32(halfExponent) << 10 | mantissa >> 13
        let remainder = mantissa & 0x1FFF
        let rounded = half + ((remainder > 0x1000 || (remainder == 0x1000 && half & 1 == 1)) ? 1 : 0)
        // A carry out of the mantissa correctly bumps the exponent (up to infinity).
        return sign | UInt16(rounded)
    }

    /// f32 value of IEEE half bits.
    static func f16ToFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }

    /// f32 value of bfloat16 bits.
    static func bf16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

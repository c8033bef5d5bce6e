// Private helpers shared by the kernel translation units (not part of the public contract).
#ifndef LLMUX_KERNELS_INTERNAL_H
#define LLMUX_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define LLMUX_X86 1
#include <immintrin.h>
#define LLMUX_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define LLMUX_X86 0
#endif

#define LLMUX_INLINE static inline __attribute__((always_inline))

// 1 when AVX2+FMA+F16C may be used (cached after the first call).
int llmux_internal_simd(void);

// Runs fn(ctx, ith, nth) for ith in 0..<nth on the pool (the calling thread is ith 0).
// nth is min(max_threads, pool size); pass max_threads <= 0 for "all". Returns after all are done.
typedef void (*llmux_task_fn)(void *ctx, int ith, int nth);
void llmux_parallel(llmux_task_fn fn, void *ctx, int max_threads);
// Frees a pool worker's thread-local scratch (called as the worker exits).
void llmux_internal_thread_exit(void);

// Splits [0, n) into nth nearly equal contiguous parts, aligned to `align` where possible.
LLMUX_INLINE void llmux_split(int64_t n, int ith, int nth, int64_t align, int64_t *begin, int64_t *end) {
    int64_t units = (n + align - 1) / align;
    int64_t b = units * ith / nth, e = units * (ith + 1) / nth;
    b *= align; e *= align;
    if (b > n) b = n;
    if (e > n) e = n;
    *begin = b; *end = e;
}

// ---- scalar conversions ----
LLMUX_INLINE float llmux_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f; memcpy(&f, &u, 4); return f;
}

LLMUX_INLINE uint16_t llmux_f32_to_bf16_1(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); // quiet NaN, keep sign
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

LLMUX_INLINE float llmux_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { // subnormal: value = man * 2^-24
            float f = (float)man * 5.9604644775390625e-08f;
            memcpy(&u, &f, 4); u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f; memcpy(&f, &u, 4); return f;
}

LLMUX_INLINE uint16_t llmux_f32_to_f16_1(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); // NaN stays NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520 -> inf
    if (a < 0x38800000u) { // result is subnormal (or zero) in f16
        if (a < 0x33000000u) return sign; // < 2^-25: rounds to 0 (2^-25 exactly is a tie -> 0)
        uint32_t e = a >> 23;             // 102..112
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;        // value = m * 2^(e-150); f16 sub unit 2^-24 -> m >> (126-e)
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    // normal: rebias exponent, round mantissa to 10 bits (carry may bump the exponent, fine)
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
    r -= (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

LLMUX_INLINE float llmux_load_w(const void *w, int dtype, size_t i) {
    switch (dtype) {
    case 1: return llmux_f16_to_f32(((const uint16_t *)w)[i]);
    case 2: return llmux_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

LLMUX_INLINE size_t llmux_dtype_size(int dtype) { return dtype == 0 ? 4 : 2; }

#if LLMUX_X86
// 8 consecutive weights widened to f32.
LLMUX_INLINE LLMUX_AVX2 __m256 llmux_load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
LLMUX_INLINE LLMUX_AVX2 __m256 llmux_load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
LLMUX_INLINE LLMUX_AVX2 __m256 llmux_load8_w(const void *w, int dtype, size_t i) {
    if (dtype == 2) return llmux_load8_bf16((const uint16_t *)w + i);
    if (dtype == 1) return llmux_load8_f16((const uint16_t *)w + i);
    return _mm256_loadu_ps((const float *)w + i);
}
LLMUX_INLINE LLMUX_AVX2 float llmux_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
LLMUX_INLINE LLMUX_AVX2 float llmux_hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
// exp(x) for x in about [-87, 88]; ~2 ulp (Cephes-style range reduction + degree-6 polynomial).
LLMUX_INLINE LLMUX_AVX2 __m256 llmux_exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif

#endif

/// CUDA C source of the seeded draw (temperature, top-k, top-p, min-p) on the device.
extension KernelSource {
    /// `sample_draw`: one block of 1,024 threads per row that samples with a temperature. The
    /// filters follow the host `Sampler` (vLLM's order: temperature, then top-k, top-p over the
    /// top-k mass, min-p against the most likely token), but as thresholds on the scaled logits,
    /// found by radix selection over their order-preserving bit patterns (8 bits a pass) instead of
    /// a sort; the draw walks the kept tokens in vocabulary order. Masses are summed as integers in
    /// units of 2^-40 (exp(s - max) ≤ 1), so every sum, threshold and draw is the same in every
    /// run. Differences from the host: tokens tied with the last kept one are all kept, tokens
    /// below 2^-40 of the most likely one cannot be drawn, and the same seed picks another token
    /// (the host walks the kept tokens from the most likely down).
    static let sampling = #"""
__device__ __forceinline__ unsigned order_key(float f) {
    const unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// exp(scaled - scaled max) in units of 2^-40.
__device__ __forceinline__ unsigned long long fixed_mass(float x, float max_raw, float inv_t) {
    return (unsigned long long)(expf((x - max_raw) * inv_t) * 1099511627776.0f);
}
// SeededRandom.uniform of the host: SplitMix64 of (seed, counter), 53 bits.
__device__ double splitmix_uniform(unsigned long long seed, unsigned long long counter) {
    unsigned long long z = seed + (counter + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}
// Exclusive prefix sum over the block (1,024 threads) and the total; same result every run.
__device__ unsigned long long block_scan_u64(unsigned long long v, unsigned long long* total) {
    __shared__ unsigned long long warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    unsigned long long inclusive = v;
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long other = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += other;
    }
    __syncthreads();
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        unsigned long long s = lane < warps ? warp_sums[lane] : 0ull;
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long other = __shfl_up_sync(0xffffffffu, s, o);
            if (lane >= o) s += other;
        }
        if (lane < warps) warp_sums[lane] = s;   // inclusive scan of the warp totals
    }
    __syncthreads();
    *total = warp_sums[warps - 1];
    return inclusive - v + (warp > 0 ? warp_sums[warp - 1] : 0ull);
}
// The largest key t with (count or mass of kept keys >= t) >= need, among keys >= floor_key.
// by_mass: weigh each key by its fixed-point mass; else count it once.
__device__ unsigned radix_threshold(const float* x, int vocab, float max_raw, float inv_t, unsigned floor_key,
                                    unsigned long long need, bool by_mass) {
    __shared__ unsigned long long hist[256];
    __shared__ unsigned s_prefix, s_mask;
    __shared__ unsigned long long s_above;
    if (threadIdx.x == 0) { s_prefix = 0; s_mask = 0; s_above = 0; }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        const unsigned prefix = s_prefix, mask = s_mask;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            const unsigned key = order_key(x[i] * inv_t);
            if (key >= floor_key && (key & mask) == prefix)
                atomicAdd(&hist[(key >> shift) & 255u], by_mass ? fixed_mass(x[i], max_raw, inv_t) : 1ull);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long cumulative = s_above;
            int chosen = 0;
            for (int b = 255; b >= 0; b--) {
                if (cumulative + hist[b] >= need) { chosen = b; break; }
                cumulative += hist[b];
            }
            s_prefix = prefix | ((unsigned)chosen << shift);
            s_mask = mask | (255u << shift);
            s_above = cumulative;
        }
        __syncthreads();
    }
    return s_prefix;
}
// params per drawn row, 10 ints: row, top_k, 1/temperature, top_p, log(min_p) (-inf: none), unused,
// seed (low, high), counter (low, high). Writes ids[row * width] and logprobs[row * width] (the raw
// log-probability of the drawn token).
extern "C" __global__ void sample_draw(const float* logits, int stride, int vocab, const int* params, int* ids,
                                       float* logprobs, int width) {
    const int* p = params + blockIdx.x * 10;
    const int row = p[0], top_k = p[1];
    const float inv_t = __int_as_float(p[2]), top_p = __int_as_float(p[3]), log_min_p = __int_as_float(p[4]);
    const unsigned long long seed = ((unsigned long long)(unsigned)p[7] << 32) | (unsigned)p[6];
    const unsigned long long counter = ((unsigned long long)(unsigned)p[9] << 32) | (unsigned)p[8];
    const float* x = logits + (long long)row * stride;
    float max_raw = -__int_as_float(0x7f800000);
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) max_raw = fmaxf(max_raw, x[i]);
    max_raw = block_max(max_raw);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(x[i] - max_raw);
    sum = block_sum(sum);
    const float lse = max_raw + logf(sum);
    // Kept: keys >= threshold. Top-k first, then top-p over what top-k kept, then min-p.
    unsigned threshold = 0;
    if (top_k > 0 && top_k < vocab) threshold = radix_threshold(x, vocab, max_raw, inv_t, 0, (unsigned long long)top_k, false);
    if (top_p < 1.0f) {
        unsigned long long local = 0;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            if (order_key(x[i] * inv_t) >= threshold) local += fixed_mass(x[i], max_raw, inv_t);
        unsigned long long total;
        block_scan_u64(local, &total);
        unsigned long long need = (unsigned long long)ceil((double)top_p * (double)total);
        if (need < 1) need = 1;
        threshold = max(threshold, radix_threshold(x, vocab, max_raw, inv_t, threshold, need, true));
    }
    if (log_min_p > -__int_as_float(0x7f800000)) threshold = max(threshold, order_key(max_raw * inv_t + log_min_p));
    // The draw: each thread owns a contiguous chunk, so the prefix sums run in vocabulary order.
    const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
    const int begin = min(vocab, (int)threadIdx.x * chunk), end = min(vocab, begin + chunk);
    unsigned long long local = 0;
    for (int i = begin; i < end; i++)
        if (order_key(x[i] * inv_t) >= threshold) local += fixed_mass(x[i], max_raw, inv_t);
    unsigned long long total;
    const unsigned long long before = block_scan_u64(local, &total);
    const unsigned long long target = (unsigned long long)(splitmix_uniform(seed, counter) * (double)total);
    if (local > 0 && target >= before && target < before + local) {
        unsigned long long cumulative = before;
        for (int i = begin; i < end; i++) {
            if (order_key(x[i] * inv_t) < threshold) continue;
            cumulative += fixed_mass(x[i], max_raw, inv_t);
            if (target < cumulative) {
                ids[row * width] = i;
                logprobs[row * width] = x[i] - lse;
                break;
            }
        }
    }
}
"""#
}

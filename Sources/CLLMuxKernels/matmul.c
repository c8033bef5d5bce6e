// y[M,N] = x[M,K] * W^T (+ bias). Two regimes:
//  * small M (decode): stream each weight row once, widen in registers, dot with every x row;
//    N is split across threads.
//  * larger M (prefill): packed, cache-blocked GEMM with a 6x16 AVX2 FMA micro-kernel; W panels
//    are widened to f32 while packing. The problem is split across threads along N (or M when N
//    is small); each thread runs an independent blocked GEMM on its part.
#include "llmux_kernels.h"
#include "kernels_internal.h"

#include <stdlib.h>

#define MR 6
#define NR 16
#ifndef LLMUX_KC
#define LLMUX_KC 256
#endif
#ifndef LLMUX_MC
#define LLMUX_MC 144
#endif
#ifndef LLMUX_NC
#define LLMUX_NC 1024
#endif
// M at or below this uses the streaming (GEMV-like) path.
#ifndef LLMUX_SMALL_M
#define LLMUX_SMALL_M 14
#endif

typedef struct {
    const float *x; int ldx;
    const void *w; int dt;
    const float *bias;
    float *y; int ldy;
    int M, N, K;
    int split_m; // 1: split rows of x across threads, 0: split N
} mm_args;

// ---------------------------------------------------------------------------------------------
// Portable fallback
static void mm_scalar_range(const mm_args *a, int m0, int m1, int n0, int n1) {
    float *row = NULL;
    if (a->dt != LLMUX_F32) row = malloc(sizeof(float) * (size_t)(a->K > 0 ? a->K : 1));
    for (int n = n0; n < n1; n++) {
        const float *wr;
        if (a->dt == LLMUX_F32) wr = (const float *)a->w + (size_t)n * a->K;
        else {
            if (!row) return;
            for (int k = 0; k < a->K; k++) row[k] = llmux_load_w(a->w, a->dt, (size_t)n * a->K + k);
            wr = row;
        }
        float b = a->bias ? a->bias[n] : 0.0f;
        for (int m = m0; m < m1; m++) {
            const float *xr = a->x + (size_t)m * a->ldx;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int k = 0;
            for (; k + 4 <= a->K; k += 4) {
                s0 += xr[k] * wr[k]; s1 += xr[k + 1] * wr[k + 1];
                s2 += xr[k + 2] * wr[k + 2]; s3 += xr[k + 3] * wr[k + 3];
            }
            for (; k < a->K; k++) s0 += xr[k] * wr[k];
            a->y[(size_t)m * a->ldy + n] = (s0 + s1) + (s2 + s3) + b;
        }
    }
    free(row);
}

static void mm_scalar_task(void *ctx, int ith, int nth) {
    const mm_args *a = ctx;
    int64_t b, e;
    if (a->split_m) { llmux_split(a->M, ith, nth, 1, &b, &e); mm_scalar_range(a, (int)b, (int)e, 0, a->N); }
    else { llmux_split(a->N, ith, nth, 8, &b, &e); mm_scalar_range(a, 0, a->M, (int)b, (int)e); }
}

static _Thread_local float *t_apack = NULL, *t_bpack = NULL, *t_aall = NULL;
static _Thread_local size_t t_aall_cap = 0;

// Called by pool workers as they exit so their packing buffers are not leaked.
void llmux_internal_thread_exit(void) {
    free(t_apack); free(t_bpack); free(t_aall);
    t_apack = t_bpack = t_aall = NULL;
    t_aall_cap = 0;
}

// Thread-local buffer of at least `floats` floats (grown as needed; NULL if allocation fails).
static __attribute__((unused)) float *grow_buffer(float **slot, size_t *cap, size_t floats) {
    if (*cap >= floats) return *slot;
    free(*slot);
    *slot = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
    *cap = *slot ? floats : 0;
    return *slot;
}

#if LLMUX_X86
// ---------------------------------------------------------------------------------------------
// Streaming path: MB rows of x against RB consecutive rows of W.
LLMUX_INLINE LLMUX_AVX2 void gemv_tile(const float *x, int ldx, const void *w, int dt, int K,
                                      const float *bias, float *y, int ldy, int MB, int RB) {
    __m256 acc[4][8];
    for (int m = 0; m < MB; m++)
        for (int r = 0; r < RB; r++) acc[m][r] = _mm256_setzero_ps();
    const size_t es = llmux_dtype_size(dt);
    const char *wb = (const char *)w;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[8];
        for (int r = 0; r < RB; r++) wv[r] = llmux_load8_w(wb + (size_t)r * K * es, dt, (size_t)k);
        for (int m = 0; m < MB; m++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)m * ldx + k);
            for (int r = 0; r < RB; r++) acc[m][r] = _mm256_fmadd_ps(wv[r], xv, acc[m][r]);
        }
    }
    for (int m = 0; m < MB; m++) {
        for (int r = 0; r < RB; r++) {
            float s = llmux_hsum8(acc[m][r]);
            for (int kk = k; kk < K; kk++)
                s += x[(size_t)m * ldx + kk] * llmux_load_w(wb + (size_t)r * K * es, dt, (size_t)kk);
            if (bias) s += bias[r];
            y[(size_t)m * ldy + r] = s;
        }
    }
}

#ifndef LLMUX_GEMV_RB
#define LLMUX_GEMV_RB 4 // W rows per tile when M > 1
#endif
#ifndef LLMUX_GEMV_MB
#define LLMUX_GEMV_MB 2 // x rows per tile
#endif

// Instantiates gemv_tile with constant dtype / shape so its loops unroll into registers.
LLMUX_INLINE LLMUX_AVX2 void gemv_tile_dispatch(const float *x, int ldx, const void *w, int dt, int K,
                                                const float *bias, float *y, int ldy, int mb, int rb) {
#define GT(MBc, RBc) gemv_tile(x, ldx, w, dt, K, bias, y, ldy, MBc, RBc)
    switch (rb) {
    case 8: GT(1, 8); break;
    case 4: if (mb == 1) GT(1, 4); else if (mb == 2) GT(2, 4); else if (mb == 3) GT(3, 4); else GT(4, 4); break;
    case 2: if (mb == 1) GT(1, 2); else if (mb == 2) GT(2, 2); else if (mb == 3) GT(3, 2); else GT(4, 2); break;
    default: if (mb == 1) GT(1, 1); else if (mb == 2) GT(2, 1); else if (mb == 3) GT(3, 1); else GT(4, 1); break;
    }
#undef GT
}

// M = 1: one W row at a time, front to back, so each thread reads a single linear stream. With
// 8 rows side by side (the tile above) and rows of 1.5 KB (K = 768), the hardware prefetcher sees
// eight short streams and a decode step reached ~62 % of the read bandwidth; linear rows ~82 %
// (a replay of the llama-100m decode step's 85 matmuls, 2 AVX2 cores, BENCHMARKS.md). Rows of
// 4 KB or more stream well side by side (more reads in flight): 100 % against 81 % linear at K = 4096.
LLMUX_INLINE LLMUX_AVX2 float gemv_row_linear(const float *x, const char *wr, int dt, int K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; // four chains hide FMA latency
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(llmux_load8_w(wr, dt, (size_t)k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(llmux_load8_w(wr, dt, (size_t)k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(llmux_load8_w(wr, dt, (size_t)k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(llmux_load8_w(wr, dt, (size_t)k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(llmux_load8_w(wr, dt, (size_t)k), _mm256_loadu_ps(x + k), a0);
    float s = llmux_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; k < K; k++) s += x[k] * llmux_load_w(wr, dt, (size_t)k);
    return s;
}

#define GEMV_CASES(DT)                                                                          \
    static LLMUX_AVX2 void gemv_rows_##DT(const mm_args *a, int n0, int n1) {                 \
        const size_t es = llmux_dtype_size(DT);                                               \
        if (a->M == 1 && (size_t)a->K * es < 4096) {                                          \
            for (int n = n0; n < n1; n++)                                                     \
                a->y[n] = gemv_row_linear(a->x, (const char *)a->w + (size_t)n * a->K * es, DT, a->K) \
                          + (a->bias ? a->bias[n] : 0.0f);                                     \
            return;                                                                           \
        }                                                                                     \
        const int rb_full = a->M == 1 ? 8 : LLMUX_GEMV_RB;                                    \
        for (int n = n0; n < n1;) {                                                           \
            int rb = n + rb_full <= n1 ? rb_full : 1;                                         \
            const char *wr = (const char *)a->w + (size_t)n * a->K * es;                      \
            const float *bb = a->bias ? a->bias + n : NULL;                                   \
            for (int m = 0; m < a->M;) {                                                      \
                int mb = a->M - m < LLMUX_GEMV_MB ? a->M - m : LLMUX_GEMV_MB;                 \
                gemv_tile_dispatch(a->x + (size_t)m * a->ldx, a->ldx, wr, DT, a->K, bb,       \
                                   a->y + (size_t)m * a->ldy + n, a->ldy, mb, rb);            \
                m += mb;                                                                      \
            }                                                                                 \
            n += rb;                                                                          \
        }                                                                                     \
    }
GEMV_CASES(0)
GEMV_CASES(1)
GEMV_CASES(2)

static void gemv_task(void *ctx, int ith, int nth) {
    const mm_args *a = ctx;
    int64_t b, e;
    llmux_split(a->N, ith, nth, 8, &b, &e);
    if (b >= e) return;
    switch (a->dt) {
    case LLMUX_F16: gemv_rows_1(a, (int)b, (int)e); break;
    case LLMUX_BF16: gemv_rows_2(a, (int)b, (int)e); break;
    default: gemv_rows_0(a, (int)b, (int)e); break;
    }
}

// ---------------------------------------------------------------------------------------------
// Blocked GEMM

// R x 16 micro-kernel (R = 1..6 rows of x). A: kc x 6 (k-major, rows >= R unused),
// B: kc x 16 (k-major). first: C = acc (+bias), else C += acc.
LLMUX_INLINE LLMUX_AVX2 void ukernel_rx16(int kc, const float *A, const float *B, float *C, int ldc,
                                          int first, const float *bias, const int R) {
    __m256 c0[MR], c1[MR];
    for (int i = 0; i < R; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
#define UK_STEP(o)                                                                               \
    {                                                                                          \
        __m256 b0 = _mm256_load_ps(B + 16 * (o)), b1 = _mm256_load_ps(B + 16 * (o) + 8);      \
        for (int i = 0; i < R; i++) {                                                          \
            __m256 a = _mm256_broadcast_ss(A + 6 * (o) + i);                                   \
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);                                             \
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);                                             \
        }                                                                                      \
    }
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
        _mm_prefetch((const char *)(B + 16 * 16), _MM_HINT_T0);
        UK_STEP(0) UK_STEP(1) UK_STEP(2) UK_STEP(3)
        A += 24; B += 64;
    }
    for (; k < kc; k++) { UK_STEP(0) A += 6; B += 16; }
#undef UK_STEP
    if (first) {
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        if (bias) { b0 = _mm256_loadu_ps(bias); b1 = _mm256_loadu_ps(bias + 8); }
        for (int i = 0; i < R; i++) {
            _mm256_storeu_ps(C + (size_t)i * ldc, _mm256_add_ps(c0[i], b0));
            _mm256_storeu_ps(C + (size_t)i * ldc + 8, _mm256_add_ps(c1[i], b1));
        }
    } else {
        for (int i = 0; i < R; i++) {
            float *c = C + (size_t)i * ldc;
            _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), c0[i]));
            _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), c1[i]));
        }
    }
}

static LLMUX_AVX2 void ukernel(int kc, const float *A, const float *B, float *C, int ldc, int first,
                               const float *bias, int rows) {
    switch (rows) {
    case 1: ukernel_rx16(kc, A, B, C, ldc, first, bias, 1); break;
    case 2: ukernel_rx16(kc, A, B, C, ldc, first, bias, 2); break;
    case 3: ukernel_rx16(kc, A, B, C, ldc, first, bias, 3); break;
    case 4: ukernel_rx16(kc, A, B, C, ldc, first, bias, 4); break;
    case 5: ukernel_rx16(kc, A, B, C, ldc, first, bias, 5); break;
    default: ukernel_rx16(kc, A, B, C, ldc, first, bias, 6); break;
    }
}

// Runs the micro-kernels of one packed B panel (nr valid columns) against mc packed rows of A.
static LLMUX_AVX2 void panel_tiles(const mm_args *a, const float *Ap, const float *Bpanel, int kc, int mc,
                                   int row0, int col0, int nr, int first) {
    const float *bias = (first && a->bias) ? a->bias + col0 : NULL;
    float tile[MR * NR];
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        const float *Apanel = Ap + (size_t)(ir / MR) * kc * MR;
        float *C = a->y + (size_t)(row0 + ir) * a->ldy + col0;
        if (nr == NR) {
            ukernel(kc, Apanel, Bpanel, C, a->ldy, first, bias, mr);
        } else {
            ukernel(kc, Apanel, Bpanel, tile, NR, 1, NULL, mr);
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++) {
                    float v = tile[i * NR + j];
                    float *c = C + (size_t)i * a->ldy + j;
                    if (first) *c = v + (bias ? bias[j] : 0.0f);
                    else *c += v;
                }
        }
    }
}

LLMUX_INLINE LLMUX_AVX2 void transpose8(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Pack W rows n0..n0+nc-1, columns k0..k0+kc-1 into ceil(nc/16) panels of kc x 16 (zero padded).
LLMUX_INLINE LLMUX_AVX2 void pack_b_dt(const void *w, int dt, int K, int n0, int nc, int k0, int kc, float *Bp) {
    const size_t es = llmux_dtype_size(dt);
    for (int p = 0; p * NR < nc; p++) {
        float *dst = Bp + (size_t)p * kc * NR;
        int rows = nc - p * NR; if (rows > NR) rows = NR;
        const char *wp = (const char *)w + ((size_t)(n0 + p * NR) * K + k0) * es;
        int k = 0;
        if (rows == NR) {
            for (; k + 8 <= kc; k += 8) {
                for (int g = 0; g < 2; g++) {
                    __m256 r[8];
                    for (int i = 0; i < 8; i++) r[i] = llmux_load8_w(wp + (size_t)(g * 8 + i) * K * es, dt, (size_t)k);
                    transpose8(r);
                    for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (size_t)(k + i) * NR + g * 8, r[i]);
                }
            }
        }
        for (; k < kc; k++) {
            for (int j = 0; j < NR; j++)
                dst[(size_t)k * NR + j] = j < rows ? llmux_load_w(wp + (size_t)j * K * es, dt, (size_t)k) : 0.0f;
        }
    }
}
static LLMUX_AVX2 void pack_b(const void *w, int dt, int K, int n0, int nc, int k0, int kc, float *Bp) {
    switch (dt) {
    case LLMUX_F16: pack_b_dt(w, LLMUX_F16, K, n0, nc, k0, kc, Bp); break;
    case LLMUX_BF16: pack_b_dt(w, LLMUX_BF16, K, n0, nc, k0, kc, Bp); break;
    default: pack_b_dt(w, LLMUX_F32, K, n0, nc, k0, kc, Bp); break;
    }
}

// Pack x rows m0..m0+mc-1, columns k0.. into ceil(mc/6) panels of kc x 6 (zero padded).
static void pack_a(const float *x, int ldx, int m0, int mc, int k0, int kc, float *Ap) {
    for (int p = 0; p * MR < mc; p++) {
        float *dst = Ap + (size_t)p * kc * MR;
        int rows = mc - p * MR; if (rows > MR) rows = MR;
        const float *xs = x + (size_t)(m0 + p * MR) * ldx + k0;
        if (rows == MR) {
            const float *r0 = xs, *r1 = xs + ldx, *r2 = xs + 2 * (size_t)ldx, *r3 = xs + 3 * (size_t)ldx,
                        *r4 = xs + 4 * (size_t)ldx, *r5 = xs + 5 * (size_t)ldx;
            for (int k = 0; k < kc; k++) {
                dst[0] = r0[k]; dst[1] = r1[k]; dst[2] = r2[k]; dst[3] = r3[k]; dst[4] = r4[k]; dst[5] = r5[k];
                dst += MR;
            }
        } else {
            for (int k = 0; k < kc; k++) {
                for (int i = 0; i < MR; i++) dst[i] = i < rows ? xs[(size_t)i * ldx + k] : 0.0f;
                dst += MR;
            }
        }
    }
}


static float *pack_buffer(float **slot, size_t floats) {
    if (!*slot) *slot = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
    return *slot;
}

static LLMUX_AVX2 void gemm_range(const mm_args *a, int m0, int m1, int n0, int n1) {
    float *Ap = pack_buffer(&t_apack, (size_t)LLMUX_MC * LLMUX_KC);
    float *Bp = pack_buffer(&t_bpack, (size_t)LLMUX_KC * (LLMUX_NC + NR));
    if (!Ap || !Bp) { mm_scalar_range(a, m0, m1, n0, n1); return; }
    const int mc = m1 - m0;
    const int a_panels = (mc + MR - 1) / MR;
    float *Aall = (mc <= LLMUX_MC) ? grow_buffer(&t_aall, &t_aall_cap, (size_t)a_panels * MR * a->K) : NULL;
    if (Aall) {
        // All rows fit one A block: pack all of A (every k block) once, then walk W one 16-row
        // panel at a time over the whole of K, so each W row is streamed sequentially exactly
        // once and each packed B panel is consumed from L1 right after packing.
        for (int pc = 0; pc < a->K; pc += LLMUX_KC) {
            int kc = a->K - pc < LLMUX_KC ? a->K - pc : LLMUX_KC;
            pack_a(a->x, a->ldx, m0, mc, pc, kc, Aall + (size_t)a_panels * MR * pc);
        }
        for (int jr = n0; jr < n1; jr += NR) {
            int nr = n1 - jr < NR ? n1 - jr : NR;
            for (int pc = 0; pc < a->K; pc += LLMUX_KC) {
                int kc = a->K - pc < LLMUX_KC ? a->K - pc : LLMUX_KC;
                pack_b(a->w, a->dt, a->K, jr, nr, pc, kc, Bp);
                panel_tiles(a, Aall + (size_t)a_panels * MR * pc, Bp, kc, mc, m0, jr, nr, pc == 0);
            }
        }
        return;
    }
    for (int jc = n0; jc < n1; jc += LLMUX_NC) {
        int nc = n1 - jc < LLMUX_NC ? n1 - jc : LLMUX_NC;
        for (int pc = 0; pc < a->K; pc += LLMUX_KC) {
            int kc = a->K - pc < LLMUX_KC ? a->K - pc : LLMUX_KC;
            pack_b(a->w, a->dt, a->K, jc, nc, pc, kc, Bp);
            for (int ic = m0; ic < m1; ic += LLMUX_MC) {
                int mc = m1 - ic < LLMUX_MC ? m1 - ic : LLMUX_MC;
                pack_a(a->x, a->ldx, ic, mc, pc, kc, Ap);
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = nc - jr < NR ? nc - jr : NR;
                    panel_tiles(a, Ap, Bp + (size_t)(jr / NR) * kc * NR, kc, mc, ic, jc + jr, nr, pc == 0);
                }
            }
        }
    }
}

static void gemm_task(void *ctx, int ith, int nth) {
    const mm_args *a = ctx;
    int64_t b, e;
    if (a->split_m) {
        llmux_split(a->M, ith, nth, MR, &b, &e);
        if (b < e) gemm_range(a, (int)b, (int)e, 0, a->N);
    } else {
        llmux_split(a->N, ith, nth, NR, &b, &e);
        if (b < e) gemm_range(a, 0, a->M, (int)b, (int)e);
    }
}
#endif // LLMUX_X86

void llmux_matmul(const float *x, int ldx, const void *w, int w_dtype, const float *bias,
                  float *y, int ldy, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) y[(size_t)m * ldy + n] = bias ? bias[n] : 0.0f;
        return;
    }
    mm_args a = {x, ldx, w, w_dtype, bias, y, ldy, M, N, K, 0};
    double flops = 2.0 * M * (double)N * K;
    int threads = flops < 2e5 ? 1 : 0; // tiny problems are not worth a dispatch
#if LLMUX_X86
    if (llmux_internal_simd()) {
        if (M <= LLMUX_SMALL_M) {
            llmux_parallel(gemv_task, &a, threads);
        } else {
            // Split along N when there are enough column panels for every thread, else along M.
            int nth = threads ? threads : llmux_get_num_threads();
            a.split_m = (N / NR < 2 * nth && M / MR >= 2 * nth) ? 1 : 0;
            llmux_parallel(gemm_task, &a, threads);
        }
        return;
    }
#endif
    a.split_m = (N < 64 && M >= 8) ? 1 : 0;
    llmux_parallel(mm_scalar_task, &a, threads);
}

// Persistent thread pool: workers spin briefly on a generation counter, then sleep on a condvar.
// A dispatch is cut into `nth` slices that threads claim from a shared word, the calling thread
// included, so a worker that the OS has not scheduled (a busy, shared machine) costs nothing: the
// caller runs its slice too. Dispatches from different threads are serialised.
#define _GNU_SOURCE
#include "llmux_kernels.h"
#include "kernels_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define LLMUX_MAX_THREADS 256
#define LLMUX_SPIN_NS 200000  // how long an idle worker spins before sleeping

typedef struct {
    pthread_mutex_t lock;          // protects sleeping / condvar handshake
    pthread_cond_t wake;
    _Atomic uint64_t generation;   // bumped once per dispatch
    _Atomic uint64_t claim;        // generation (32 bits) | slices (16) | next slice (16)
    _Atomic int slices_done;       // slices of the current dispatch finished
    _Atomic int shutdown;
    int n_workers;                 // threads besides the caller
    pthread_t threads[LLMUX_MAX_THREADS];
    // current job (written before generation is bumped)
    llmux_task_fn fn;
    void *ctx;
    int nth;
} llmux_pool;

static pthread_mutex_t g_dispatch = PTHREAD_MUTEX_INITIALIZER; // serialises dispatch + (re)config
static llmux_pool *g_pool = NULL;
static _Atomic int g_requested = 0; // 0 = default (online CPUs); written under g_dispatch
static _Thread_local int t_in_pool = 0;

static inline void cpu_relax(void) {
#if LLMUX_X86
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

double llmux_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct { llmux_pool *pool; int index; } worker_arg;

// Claims the next slice of dispatch `gen`, or returns -1 when it has none left (or is over).
// A successful claim proves the dispatch is still running, so fn and ctx are still its own.
static int claim_slice(llmux_pool *pool, uint32_t gen, int *nth) {
    uint64_t v = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen) return -1;
        int slices = (int)((v >> 16) & 0xffffu), next = (int)(v & 0xffffu);
        if (next >= slices) return -1;
        if (atomic_compare_exchange_weak_explicit(&pool->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) {
            *nth = slices;
            return next;
        }
    }
}

// Runs slices of dispatch `gen` until none is left.
static void run_slices(llmux_pool *pool, uint32_t gen) {
    int nth = 0, slice;
    while ((slice = claim_slice(pool, gen, &nth)) >= 0) {
        pool->fn(pool->ctx, slice, nth);
        atomic_fetch_add_explicit(&pool->slices_done, 1, memory_order_acq_rel);
    }
}

static void *worker_main(void *p) {
    worker_arg a = *(worker_arg *)p;
    free(p);
    llmux_pool *pool = a.pool;
    t_in_pool = 1;
    uint64_t seen = 0; // the pool starts at generation 0; a dispatch may already have bumped it
    for (;;) {
        uint64_t g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g == seen) {
            uint64_t start = now_ns();
            unsigned spins = 0;
            while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
                cpu_relax();
                if ((++spins & 255u) == 0 && now_ns() - start > LLMUX_SPIN_NS) break;
            }
            if (g == seen) {
                pthread_mutex_lock(&pool->lock);
                while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
                    pthread_cond_wait(&pool->wake, &pool->lock);
                pthread_mutex_unlock(&pool->lock);
            }
        }
        seen = g;
        if (atomic_load_explicit(&pool->shutdown, memory_order_acquire)) break;
        run_slices(pool, (uint32_t)g);
    }
    llmux_internal_thread_exit();
    return NULL;
}

static int default_threads(void) {
    static _Atomic int cached = 0; // sysconf reads /sys, so ask once
    int n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n > 0) return n;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("LLMUX_NUM_THREADS"); // optional override of the default
    if (env && atoi(env) > 0) c = atoi(env);
    if (c < 1) c = 1;
    if (c > LLMUX_MAX_THREADS) c = LLMUX_MAX_THREADS;
    atomic_store_explicit(&cached, (int)c, memory_order_relaxed);
    return (int)c;
}

static int wanted_threads(void) { return g_requested > 0 ? g_requested : default_threads(); }

// g_dispatch held.
static llmux_pool *pool_get(void) {
    if (g_pool) return g_pool;
    llmux_pool *pool = calloc(1, sizeof(llmux_pool));
    if (!pool) return NULL;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    int n = wanted_threads();
    for (int i = 1; i < n; i++) {
        worker_arg *a = malloc(sizeof(worker_arg));
        if (!a) break;
        a->pool = pool; a->index = i;
        if (pthread_create(&pool->threads[pool->n_workers], NULL, worker_main, a) != 0) { free(a); break; }
        pool->n_workers++;
    }
    g_pool = pool;
    return pool;
}

// g_dispatch held.
static void pool_destroy(void) {
    llmux_pool *pool = g_pool;
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->shutdown, 1, memory_order_release);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n_workers; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    g_pool = NULL;
}

void llmux_set_num_threads(int n) {
    if (n > LLMUX_MAX_THREADS) n = LLMUX_MAX_THREADS;
    pthread_mutex_lock(&g_dispatch);
    int old = wanted_threads();
    g_requested = n > 0 ? n : 0;
    if (wanted_threads() != old) pool_destroy();
    pthread_mutex_unlock(&g_dispatch);
}

// Lock-free so that it may be called from anywhere, including inside a parallel region.
int llmux_get_num_threads(void) { return wanted_threads(); }

void llmux_parallel(llmux_task_fn fn, void *ctx, int max_threads) {
    if (t_in_pool || max_threads == 1) { fn(ctx, 0, 1); return; } // nested call: run inline
    pthread_mutex_lock(&g_dispatch);
    llmux_pool *pool = pool_get();
    int nth = pool ? pool->n_workers + 1 : 1;
    if (max_threads > 0 && max_threads < nth) nth = max_threads;
    if (nth <= 1) {
        pthread_mutex_unlock(&g_dispatch);
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn; pool->ctx = ctx; pool->nth = nth;
    atomic_store_explicit(&pool->slices_done, 0, memory_order_relaxed);
    uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool->claim, ((gen & 0xffffffffu) << 32) | ((uint64_t)nth << 16), memory_order_release);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    t_in_pool = 1;
    run_slices(pool, (uint32_t)gen);
    t_in_pool = 0;
    unsigned spins = 0;
    while (atomic_load_explicit(&pool->slices_done, memory_order_acquire) < nth) {
        cpu_relax();
        if (++spins > (1u << 12)) sched_yield();
    }
    pthread_mutex_unlock(&g_dispatch);
}

int llmux_internal_simd(void) {
    static _Atomic int level = -1;
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l < 0) {
#if LLMUX_X86
        __builtin_cpu_init();
        l = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) ? 1 : 0;
        const char *env = getenv("LLMUX_NO_SIMD");
        if (env && env[0] == '1') l = 0;
#else
        l = 0;
#endif
        atomic_store_explicit(&level, l, memory_order_relaxed);
    }
    return l;
}

int llmux_simd_level(void) { return llmux_internal_simd(); }

#!/usr/bin/env bash
# Builds the C kernels with the package's flags plus a small driver, runs the check + benchmark,
# then measures numpy's (OpenBLAS) fp32 matmul with 2 threads for comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/llmux_kbench
"${CC:-clang}" -std=c11 -O3 -ffp-contract=fast -fno-math-errno ${EXTRA_CFLAGS:-} -ISources/CLLMuxKernels/include \
  Sources/CLLMuxKernels/*.c scripts/bench/kbench.c -o "$out" -lpthread -lm
"$out" "$@"
if [ "${1:-}" != q ] && command -v python3 >/dev/null; then
  OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2} python3 - <<'PY'
import time
import numpy as np
M, N, K = 512, 2048, 2048
x = np.random.rand(M, K).astype(np.float32); w = np.random.rand(N, K).astype(np.float32)
for _ in range(3): x @ w.T
best = min((lambda t: (x @ w.T, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(10))
print(f"numpy (OpenBLAS) x@w.T M={M} N={N} K={K} f32: {2*M*N*K/best/1e9:.1f} GFLOP/s")
PY
fi

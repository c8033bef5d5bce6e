#!/usr/bin/env bash
# A one-minute look at the asynchronous GPU path before the long run: two small random-weight
# models (Qwen2.5-0.5B and Llama-3.2-1B shapes), `bench mux --check` with every job traced.
# Usage: LLMUX_BIN=… bash scripts/gpu/quick_mux_check.sh   (log in $OUT/quick.log)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-dist/llmux}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
"$BIN" make-model --preset qwen2.5-0.5b --dtype bf16 --out /tmp/quick-q05 > /dev/null 2>&1
"$BIN" make-model --preset llama3.2-1b --dtype bf16 --out /tmp/quick-l1b > /dev/null 2>&1
LLMUX_TRACE_JOBS=1 timeout ${QUICK_LIMIT:-180} "$BIN" bench mux --device cuda --check --model q05=/tmp/quick-q05 --model l1b=/tmp/quick-l1b \
    --rates 4 --duration 4 --kv-cache-memory 4GiB > "$OUT/quick.log" 2>&1
echo "quick check rc=$?"
grep -v '^\[ *[0-9.]*\] \(launch\|done\)' "$OUT/quick.log" | grep -v 'loading\|writing' | tail -25
echo "last trace lines:"; grep '\] \(launch\|done\)' "$OUT/quick.log" | tail -6

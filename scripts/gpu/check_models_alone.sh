#!/usr/bin/env bash
# `bench mux --check` with one model per unit, where a model's prefill-lane job and its decode or
# mixed job run side by side (the case that found shared activation buffers under mux-hybrid).
# Runs the check twice on the bf16 Llama-3-8B shape (a race changes between runs, rounding does
# not), then on the Llama-3.2-1B shape in bf16, then on f32 checkpoints of both shapes with the
# f32 kernels (LLMUX_CUDA_PRECISION=f32: in f32 a different batch composition moves no greedy
# token; a race still would). The backend's precision, not the checkpoint's dtype, sets the
# kernels: an f32 checkpoint without LLMUX_CUDA_PRECISION=f32 runs in bf16.
# Logs go to $OUT; a table of the check lines is last.
# Usage: bash scripts/gpu/check_models_alone.sh   (llmux binary in $LLMUX_BIN, default dist/llmux)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/common.sh"
export LLMUX_CACHE=/tmp/llmux-cache
POLICIES=${POLICIES:-mux,mux-mixed,mux-hybrid,spatial,temporal}
for preset in llama3.2-1b llama3-8b; do
    F32=$LLMUX_CACHE/check-$preset-f32
    [ -f "$F32/config.json" ] || "$BIN" make-model --preset $preset --dtype f32 --seed 11 --out "$F32" > "$OUT/make-$preset-f32.log" 2>&1
done
# The bf16 checkpoints are the ones `bench mux --device cuda` writes; write them if missing.
[ -f "$LLMUX_CACHE/bench-mux-llama3-8b/config.json" ] || "$BIN" bench mux --device cuda --policies temporal --rates 1 --duration 1 > "$OUT/write-bf16.log" 2>&1
run() {   # NAME MODEL=PATH [PRECISION]
    LLMUX_CUDA_PRECISION=${3:-bf16} "$BIN" bench mux --device cuda --check --model "$2" --policies "$POLICIES" --rates 1 --duration 1 > "$OUT/check-$1.log" 2>&1
    echo "$1 rc=$?"
}
run 8b-bf16-a llama3-8b=$LLMUX_CACHE/bench-mux-llama3-8b
run 8b-bf16-b llama3-8b=$LLMUX_CACHE/bench-mux-llama3-8b
run 1b-bf16 llama3.2-1b=$LLMUX_CACHE/bench-mux-llama3.2-1b
run 1b-f32 llama3.2-1b=$LLMUX_CACHE/check-llama3.2-1b-f32 f32
run 8b-f32 llama3-8b=$LLMUX_CACHE/check-llama3-8b-f32 f32
for f in "$OUT"/check-*.log; do
    echo "== $(basename "$f" .log): $(head -1 "$f" | grep -o '[a-z0-9]* kernels')"
    grep -A3 '^check [a-z-]*:' "$f" | grep -v '^--' | head -20
done

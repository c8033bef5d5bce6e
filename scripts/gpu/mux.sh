#!/usr/bin/env bash
# Issue 8 on one GPU: `llmux bench mux --device cuda --check` (four colocated random-weight models
# of Llama-3-8B, Llama-3.2-3B, Llama-3.2-1B and Qwen2.5-0.5B shapes), then `llmux profile` at
# several SM shares. Logs and results go to $OUT; a short table is printed last.
# Usage: bash scripts/gpu/mux.sh ALPHAS RATES DURATION [profile]
#   e.g. bash scripts/gpu/mux.sh 2.1 4,8,16,32 12
# Expects the llmux binary in $LLMUX_BIN (default dist/llmux). $MUX_ARGS adds arguments to
# `bench mux` (e.g. MUX_ARGS="--policies mux,temporal,temporal-split"); $TAG names the outputs.
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ALPHAS=${1:-2.1}; RATES=${2:-4,8,16,32}; DURATION=${3:-12}; PROFILE=${4:-}
BIN=${LLMUX_BIN:-dist/llmux}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh"
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels LLMUX_CACHE=/tmp/llmux-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
TAG=${TAG:-$(echo "$ALPHAS" | tr ',' '_')}
set -x
"$BIN" bench mux --device cuda --check --alpha "$ALPHAS" --rates "$RATES" --duration "$DURATION" ${MUX_ARGS:-} \
    --json "$OUT/mux-$TAG.json" --plot "$OUT/mux-$TAG.svg" 2>&1 | tee "$OUT/mux-$TAG.log" | grep -v '^\[' 
RC=$?
set +x
if [ -n "$PROFILE" ]; then
    "$BIN" profile --device cuda --model llama3.2-1b=$LLMUX_CACHE/bench-mux-llama3.2-1b --sm-shares 0.25,0.5,0.75,1 \
        --tokens 128,512,2048 --batches 1,8,32 --contexts 128,1024 --passes 1 --out "$OUT/cost-table-h100.json" > "$OUT/profile.log" 2>&1
    echo "profile rc=$?"; tail -3 "$OUT/profile.log"
fi
exit $RC

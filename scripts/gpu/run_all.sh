#!/usr/bin/env bash
# One call on a GPU machine: correctness of the CUDA backend against the golden fixtures, then
# engine benchmarks; logs go to $OUT (or ./gpu-out), a short table is printed last.
# Usage: bash run_all.sh [quick|full]   (quick: no Llama-3-8B). Expects the llmux binary beside
# this script (llmux-cuda) or in $LLMUX_BIN, and the fixtures in Tests/Fixtures/golden.
set -u -o pipefail
MODE=${1:-full}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
# Logs are written to LOGS and packed into $OUT/logs.tgz on exit (the device tool returns at most
# 8 files), so a run stopped at its time limit still brings them back.
LOGS=/tmp/llmux-logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
trap 'tar czf "$OUT/logs.tgz" -C /tmp llmux-logs 2>/dev/null; cp "$LOGS/summary.txt" "$OUT/" 2>/dev/null' EXIT
SUMMARY="$LOGS/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME SECONDS command…
    local name=$1 limit=$2; shift 2
    echo "=== $name ($(date +%T))"
    local start=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    cat "$LOGS/$name.log" | tail -40
    echo "=== $name: rc=$rc in $((SECONDS - start)) s"
    echo "$name rc=$rc $((SECONDS - start))s" >> "$LOGS/steps.txt"
    return $rc
}

# --- environment: where the CUDA libraries are -------------------------------------------
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
source "$HERE/cuda_env.sh"
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
rm -rf "$LLMUX_KERNEL_CACHE"
cd "$(dirname "$HERE")"   # the repository root (dist/..)

# --- correctness ----------------------------------------------------------------------------
# Teacher-forced transformers logits (fp32 reference; its own bf16 run compared the same way).
REF=/tmp/llmux-reference-logits
step reference_logits 150 env PYTHONUNBUFFERED=1 python3 "$HERE/reference_logits.py" Tests/Fixtures/golden "$REF"
CHECK=(gpu-check --fixtures Tests/Fixtures/golden --reference-logits "$REF")
step gpucheck_cuda 150 "$BIN" "${CHECK[@]}" --device cuda
step gpucheck_cuda_f32 150 env LLMUX_CUDA_PRECISION=f32 "$BIN" "${CHECK[@]}" --device cuda
step gpucheck_cuda_decode_attention 90 env LLMUX_CUDA_ATTENTION=decode "$BIN" "${CHECK[@]}" --device cuda
step gpucheck_cuda_simt_nograph 90 env LLMUX_CUDA_ATTENTION=simt LLMUX_CUDA_GRAPHS=0 LLMUX_CUDA_FUSE=0 "$BIN" "${CHECK[@]}" --device cuda
step gpucheck_cpu 90 "$BIN" "${CHECK[@]}" --device cpu
export LLMUX_CACHE=/tmp/llmux-cache
step demo_cpu 60 "$BIN" generate --demo --prompt-ids 1,2,3,4,5 --max-tokens 24 --json --device cpu
step demo_cuda 60 "$BIN" generate --demo --prompt-ids 1,2,3,4,5 --max-tokens 24 --json --device cuda
python3 - "$LOGS" <<'PY' | tee -a "$SUMMARY"
import json, sys
out = sys.argv[1]
def load(name):
    try: return json.loads([l for l in open(f"{out}/{name}.log") if l.startswith("{")][-1])
    except Exception as e: return None
a, b = load("demo_cpu"), load("demo_cuda")
if a and b:
    same = sum(x == y for x, y in zip(a["token_ids"], b["token_ids"]))
    err = max(abs(x["logprob"] - y["logprob"]) for x, y in zip(a["logprobs"], b["logprobs"]))
    print(f"demo generate: cuda vs cpu tokens equal {same}/{len(a['token_ids'])}, max |dlogprob| of chosen {err:.4f}")
else:
    print("demo generate: missing output")
PY
grep -h '^transformers: ' "$LOGS"/reference_logits.log >> "$SUMMARY"
for f in "$LOGS"/gpucheck_*.log; do
    echo "-- $(basename "$f" .log)" >> "$SUMMARY"
    grep -h -E '^\S+ \| (batched|chunked48) |^teacher forcing: |^device ' "$f" >> "$SUMMARY"
done
grep -h 'kernels ' "$LOGS"/gpucheck_cuda.log "$LOGS"/gpucheck_cuda_decode_attention.log >> "$SUMMARY"

# --- speed ----------------------------------------------------------------------------------
"$BIN" make-model --preset llama3.2-1b --dtype bf16 --out /tmp/m1b > "$LOGS/make_1b.log" 2>&1
step bench_1b 120 "$BIN" bench engine --device cuda --model /tmp/m1b --batches 1,8,32 --prompt-length 512 --decode-steps 32 --json "$LOGS/bench_1b.json"
step bench_1b_round1 120 env LLMUX_CUDA_ATTENTION=simt LLMUX_CUDA_GRAPHS=0 LLMUX_CUDA_FUSE=0 "$BIN" bench engine --device cuda --model /tmp/m1b --batches 1,8,32 --prompt-length 512 --decode-steps 32
if [ "$MODE" = full ] && [ $SECONDS -lt ${FULL_BEFORE:-300} ]; then
    df -h /tmp | tail -1
    start=$SECONDS
    timeout 200 "$BIN" make-model --preset llama3-8b --dtype bf16 --out /tmp/m8b > "$LOGS/make_8b.log" 2>&1
    echo "make-model llama3-8b: rc=$? in $((SECONDS - start)) s"
    rm -rf /tmp/m1b
    step bench_8b 200 "$BIN" bench engine --device cuda --model /tmp/m8b --batches 1,8 --prompt-length 2048 --decode-steps 32 --json "$LOGS/bench_8b.json"
    step bench_8b_decode 120 "$BIN" bench engine --device cuda --model /tmp/m8b --batches 1,32 --prompt-length 128 --decode-steps 64
    [ $SECONDS -lt ${LEGACY_BEFORE:-400} ] && step bench_8b_cublaslt 120 env LLMUX_CUDA_GEMV=0 "$BIN" bench engine --device cuda --model /tmp/m8b --batches 1 --prompt-length 128 --decode-steps 64
    [ $SECONDS -lt ${LEGACY_BEFORE:-400} ] && step bench_8b_round1 150 env LLMUX_CUDA_ATTENTION=simt LLMUX_CUDA_GRAPHS=0 LLMUX_CUDA_FUSE=0 "$BIN" bench engine --device cuda --model /tmp/m8b --batches 1 --prompt-length 2048 --decode-steps 64
fi

echo
echo "================ summary ================"
cat "$LOGS/steps.txt"
cat "$SUMMARY"
for f in bench_1b bench_1b_round1 bench_8b bench_8b_decode bench_8b_cublaslt bench_8b_round1; do
    [ -f "$LOGS/$f.log" ] && { echo "--- $f"; grep -E '^(device|copy|read|batch|\s*[0-9]+ \|)' "$LOGS/$f.log"; }
done

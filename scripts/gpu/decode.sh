#!/usr/bin/env bash
# Issue 6's decode figures in one call on a GPU machine: the Llama-3-8B shape (bf16) at batch 1
# with the GEMV kernels and with cuBLASLt (same binary, LLMUX_CUDA_GEMV=0), GPU time per step
# (--trace), 64 and 256 concurrent requests of 128 prompt and 128 output tokens, and Hugging Face
# transformers on the same checkpoint (generate at batch 1, generate_batch at 64 and 256).
# Usage: LLMUX_BIN=… bash decode.sh   (logs and JSON to $OUT, a table last)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
RESULTS=${OUT:-$PWD/gpu-out}
mkdir -p "$RESULTS"
# Logs go to OUT here and come back packed (the device tool returns at most 8 files).
OUT=/tmp/llmux-decode
rm -rf "$OUT"; mkdir -p "$OUT"
trap 'tar czf "$RESULTS/decode-logs.tgz" -C /tmp llmux-decode; cp "$OUT"/*.json "$OUT/summary.txt" "$RESULTS/" 2>/dev/null' EXIT
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1
MODEL=${MODEL:-/tmp/m8b}
if [ ! -f "$MODEL/config.json" ]; then
    start=$SECONDS
    "$BIN" make-model --preset llama3-8b --dtype bf16 --out "$MODEL" > "$OUT/make_8b.log" 2>&1 || { tail "$OUT/make_8b.log"; exit 1; }
    echo "make-model llama3-8b in $((SECONDS - start)) s"
fi
run() {  # run NAME SECONDS command…
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "== $name: rc=$? in $((SECONDS - start)) s"
    grep -E '^(device|copy|batch|\s*[0-9]+ \||  batch)' "$OUT/$name.log"
}
B1=(bench engine --device cuda --model "$MODEL" --batches 1 --prompt-length 128 --decode-steps 128 --trace)
run b1_gemv 150 "$BIN" "${B1[@]}" --json "$OUT/b1_gemv.json"
run b1_cublaslt 150 env LLMUX_CUDA_GEMV=0 "$BIN" "${B1[@]}" --json "$OUT/b1_cublaslt.json"
run concurrent 300 "$BIN" bench engine --device cuda --model "$MODEL" --batches 64,256 --prompt-length 128 \
    --decode-steps 127 --trace --json "$OUT/concurrent.json"
run transformers 400 env PYTHONUNBUFFERED=1 python3 "$HERE/transformers_baseline.py" "$MODEL" --concurrency 64,256 \
    --attention "${HF_ATTENTION:-sdpa}"
grep -E '^(generate|attention)' "$OUT/transformers.log"
tail -3 "$OUT/transformers.log" | grep -v '^{' | tail -2
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out = sys.argv[1]
def load(name):
    try: return json.load(open(f"{out}/{name}.json"))
    except Exception: return None
try: hf = json.loads([l for l in open(f"{out}/transformers.log") if l.startswith("{")][-1])["runs"]
except Exception: hf = {}
print("\n================ decode summary ================")
for name in ["b1_gemv", "b1_cublaslt"]:
    r = load(name)
    if not r: print(name, "missing"); continue
    row = r["rows"][0]
    floor = r["weightBytesPerDecodeStep"] / (r["readBandwidthGBs"] * 1e9)
    print(f"{name}: {row['decodeTokensPerSecond']:.1f} tok/s, step {1000 / row['decodeTokensPerSecond']:.3f} ms, "
          f"floor {1000 * floor:.3f} ms (copy {r['readBandwidthGBs']:.0f} GB/s) -> {1 / row['decodeTokensPerSecond'] / floor:.3f}x floor")
c = load("concurrent")
for row in (c or {}).get("rows", []):
    ref = hf.get(f"generate_batch_{row['batch']}", {}).get("output_tokens_per_second")
    ratio = f", {row['outputTokensPerSecond'] / ref:.1f}x transformers generate_batch ({ref:.0f})" if ref else ", transformers n/a"
    print(f"{row['batch']} concurrent: {row['outputTokensPerSecond']:.0f} output tok/s{ratio}")
b = hf.get("generate_batch1", {}).get("output_tokens_per_second")
g = load("b1_gemv")
if b and g: print(f"batch 1: LLMux {g['rows'][0]['decodeTokensPerSecond']:.1f} tok/s vs transformers generate {b:.1f} tok/s")
PY

#!/usr/bin/env bash
# Decode attention on tensor cores (attn_decode_tc*, the default in bf16) against the CUDA-core
# kernel (LLMUX_CUDA_ATTENTION=simt-decode) in one call: the golden fixtures' teacher-forced logits
# against transformers fp32 under both, the Llama-3-8B shape's greedy tokens and log-probabilities
# under both (a 300-token prompt), and decode steps at 1, 64 and 256 sequences (--trace).
# Usage: LLMUX_BIN=… bash decode_attention.sh   (logs to $OUT, a table last)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
MODEL=${MODEL:-/tmp/m8b}
[ -f "$MODEL/config.json" ] || "$BIN" make-model --preset llama3-8b --dtype bf16 --out "$MODEL" > "$OUT/make_8b.log" 2>&1
REF=/tmp/llmux-ref
[ -d "$REF" ] || python3 "$HERE/reference_logits.py" Tests/Fixtures/golden "$REF" > "$OUT/reference.log" 2>&1
for variant in tc simt-decode; do
    envs=(); [ "$variant" = tc ] || envs=(LLMUX_CUDA_ATTENTION=$variant)
    env "${envs[@]}" "$BIN" gpu-check --fixtures Tests/Fixtures/golden --reference-logits "$REF" --device cuda > "$OUT/gpucheck-$variant.log" 2>&1
    echo "gpu-check $variant: rc=$? $(grep -c PASS "$OUT/gpucheck-$variant.log") PASS lines"
    grep -iE "relative|max" "$OUT/gpucheck-$variant.log" | head -8
    ids=$(python3 -c "print(','.join(str((i * 7919) % 120000 + 1000) for i in range(300)))")
    env "${envs[@]}" "$BIN" generate --model "$MODEL" --device cuda --prompt-ids "$ids" --max-tokens 32 --ignore-eos --logprobs 1 --json \
        > "$OUT/gen8b-$variant.json" 2> "$OUT/gen8b-$variant.err"
    env "${envs[@]}" "$BIN" bench engine --device cuda --model "$MODEL" --batches 1,64,256 --prompt-length 128 --decode-steps 48 --trace \
        --json "$OUT/bench-$variant.json" > "$OUT/bench-$variant.log" 2>&1
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
a = json.load(open(f"{out}/gen8b-tc.json")); b = json.load(open(f"{out}/gen8b-simt-decode.json"))
same = sum(x == y for x, y in zip(a["token_ids"], b["token_ids"]))
first = next((i for i, (x, y) in enumerate(zip(a["token_ids"], b["token_ids"])) if x != y), len(a["token_ids"]))
dl = max(abs(x["logprob"] - y["logprob"]) for x, y in list(zip(a["logprobs"], b["logprobs"]))[:first]) if first else 0
print(f"8B greedy tokens tc vs simt: {same}/{len(a['token_ids'])} equal, first difference at {first}, max |dlogprob| before it {dl:.4f}")
print("variant       batch  decode tok/s  GPU ms/step(median)  output tok/s")
for v in ["tc", "simt-decode"]:
    d = json.load(open(f"{out}/bench-{v}.json"))
    for r in d["rows"]:
        g = sorted(r["decodeTrace"]["gpuMilliseconds"]); med = g[len(g) // 2]
        print(f"{v:12s} {r['batch']:6d} {r['decodeTokensPerSecond']:12.1f} {med:20.2f} {r['outputTokensPerSecond']:13.1f}")
PY

#!/usr/bin/env bash
# `llmux serve` on the GPU with a unit of one model (which forms mixed jobs by default): greedy
# answers through the OpenAI API must equal `llmux generate` (the pipelined runner, no SM
# partitions) on the same random-weight Llama-3.2-1B, for a short and a long prompt sent at once,
# up to the first step where generate's top two are within 0.05 (bf16 may flip a near tie).
# Logs go to $OUT; the last line says PASS or FAIL.
# Usage: bash scripts/gpu/serve_one_model.sh   (llmux binary in $LLMUX_BIN, default dist/llmux)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/common.sh"
MODEL=/tmp/llmux-serve-1b
[ -f "$MODEL/config.json" ] || "$BIN" make-model --preset llama3.2-1b --seed 5 --out "$MODEL" > "$OUT/make-model.log" 2>&1
"$BIN" serve --device cuda --model one="$MODEL" --port 18080 > "$OUT/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do curl -sf localhost:18080/health > /dev/null && break; sleep 1; done
SHORT=$(python3 -c "print(','.join(str(3 + i * 7 % 5000) for i in range(12)))")
LONG=$(python3 -c "print(','.join(str(3 + i * 31 % 5000) for i in range(700)))")
ask() {   # PROMPT-IDS FILE
    curl -s localhost:18080/v1/completions -H 'Content-Type: application/json' -d "{\"model\": \"one\", \"prompt\": [$1],
      \"max_tokens\": 24, \"temperature\": 0, \"logprobs\": 1, \"ignore_eos\": true, \"return_tokens_as_token_ids\": true}" > "$2"
}
ask "$LONG" "$OUT/long.json" & LONG_PID=$!
ask "$SHORT" "$OUT/short.json" & SHORT_PID=$!
wait $LONG_PID $SHORT_PID
kill -TERM $SERVER; wait $SERVER; echo "serve exit $?"
for name in short long; do
    ids=$([ $name = short ] && echo "$SHORT" || echo "$LONG")
    "$BIN" generate --device cuda --model "$MODEL" --prompt-ids "$ids" --max-tokens 24 --logprobs 2 --json > "$OUT/generate-$name.json" 2> "$OUT/generate-$name.log"
done
grep -E "unit 0|SM partitionings" "$OUT/serve.log"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
ok, total = True, 0
for name in ("short", "long"):
    served = json.load(open(f"{out}/{name}.json"))["choices"][0]["logprobs"]["tokens"]
    served = [int(t.split(":")[1]) for t in served]
    reference = json.load(open(f"{out}/generate-{name}.json"))
    generated = reference["token_ids"]
    gaps = [step["top"][0]["logprob"] - step["top"][1]["logprob"] for step in reference["logprobs"]]
    compared = next((i for i, gap in enumerate(gaps) if gap <= 0.05), len(gaps))
    same = len(served) == 24 and served[:compared] == generated[:compared]
    ok &= same
    total += compared
    print(f"{name}: {compared} tokens compared before a near tie; served {served[:8]}… generate {generated[:8]}… "
          + ("equal" if same else "DIFFERENT"))
print("PASS" if ok and total > 0 else "FAIL" if not ok else "FAIL: no token compared (near ties at once)")
EOF

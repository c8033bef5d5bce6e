#!/bin/bash
# usage: replay.sh N  — prices every step of run N's traces with cost table E
N=$1; BIN=/tmp/sim3/llmux-old
cd /tmp/sim3
flock -x /tmp/llmux-cpu.lock bash -c "echo \"replay$N start \$(date +%T) \$(uptime)\" >> load.log
for r in 1 2; do for p in mux spatial temporal; do echo \"## run $N, rate \$r, \$p\"; $BIN simulate --plan plan-cpu-E.json --cost cost-table-cpu-E.json --policies \$p --replay-trace traces$N/bench-\$p-r\$r.jsonl 2>&1; done; done > trace-replay-run$N-E.txt
echo \"replay$N end \$(date +%T) \$(uptime)\" >> load.log"

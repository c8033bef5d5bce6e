#!/bin/bash
# usage: sim.sh TABLE-LETTER   (cost-table-cpu-X.json -> plan-cpu-X.json, simulate-X-rate{1,2}.json)
X=$1; BIN=/tmp/sim3/llmux-old; D=/work/wt-sim/docs/placement
cd /tmp/sim3
flock -x /tmp/llmux-cpu.lock bash -c "echo \"sim$X start \$(date +%T) \$(uptime)\" >> load.log
$BIN plan --cluster $D/cpu-cluster.yaml --models $D/cpu-models.yaml --cost cost-table-cpu-$X.json --out plan-cpu-$X.json > plan-$X.log 2>&1
for r in 1 2; do $BIN simulate --plan plan-cpu-$X.json --cost cost-table-cpu-$X.json --policies mux,spatial,temporal --alpha 2.1 --total-rate \$r --duration 60 --max-tokens-per-step 512 --json simulate-$X-rate\$r.json > simulate-$X-rate\$r.txt 2>&1; done
echo \"sim$X end \$(date +%T) \$(uptime)\" >> load.log"

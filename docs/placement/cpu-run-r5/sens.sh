#!/bin/bash
# Sensitivity of the simulated p50s: table E scaled uniformly by 0.97..1.03 (seed 1), and seeds 1..6 at x1.00.
BIN=/tmp/sim3/llmux-old; cd /tmp/sim3
flock -x /tmp/llmux-cpu.lock bash -c "echo \"sens start \$(date +%T) \$(uptime)\" >> load.log
for r in 1 2; do
 for f in 0.97 0.98 0.99 1.01 1.02 1.03; do $BIN simulate --plan plan-cpu-E.json --cost cost-table-cpu-E-x\$f.json --policies mux,spatial,temporal --alpha 2.1 --total-rate \$r --duration 60 --max-tokens-per-step 512 --json sens-x\$f-rate\$r.json > /dev/null 2>&1; done
 for s in 2 3 4 5 6; do $BIN simulate --plan plan-cpu-E.json --cost cost-table-cpu-E.json --policies mux,spatial,temporal --alpha 2.1 --total-rate \$r --duration 60 --max-tokens-per-step 512 --seed \$s --json sens-seed\$s-rate\$r.json > /dev/null 2>&1; done
done
echo \"sens end \$(date +%T) \$(uptime)\" >> load.log"

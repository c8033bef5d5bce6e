#!/bin/bash
# usage: bench.sh N BINARY
N=$1; BIN=$2
cd /tmp/sim3
flock -x /tmp/llmux-cpu.lock bash -c "echo \"bench$N start \$(date +%T) \$(uptime)\" >> load.log; $BIN bench mux --threads 1 --rates 1,2 --duration 60 --json bench-mux-run$N.json --trace traces$N > bench$N.log 2>&1; echo \"bench$N end \$(date +%T) \$(uptime) rc=\$?\" >> load.log"

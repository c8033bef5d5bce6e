#!/bin/bash
cd /tmp/sim3
BIN=/tmp/sim3/llmux-old
REF="--model llama-s=/tmp/llmux-cache/bench-mux-llama-s --model mistral-l=/tmp/llmux-cache/bench-mux-mistral-l"
ref() { flock -x /tmp/llmux-cpu.lock bash -c "echo \"ref$1 start \$(date +%T) \$(uptime)\" >> load.log; $BIN profile --device cpu --threads 1 --passes 3 --tokens 16 --batches 1,2 --contexts 16,512 $REF --out ref-$1.json > ref-$1.log 2>&1; echo \"ref$1 end \$(date +%T) \$(uptime) rc=\$?\" >> load.log"; }
while ! grep -q "bench1 end" load.log 2>/dev/null; do sleep 1; done
./bench.sh 2 $BIN
ref after-bench2
flock -x /tmp/llmux-cpu.lock bash -c "cd /work/wt-sim; echo \"build start \$(date +%T) \$(uptime)\" >> /tmp/sim3/load.log; swift build > /tmp/sim3/build-debug.log 2>&1; echo rc=\$? >> /tmp/sim3/build-debug.log; swift test --filter 'Placement|Simulat|Scheduler|Kernel' > /tmp/sim3/test.log 2>&1; echo rc=\$? >> /tmp/sim3/test.log; swift build -c release --product llmux > /tmp/sim3/build-release.log 2>&1; echo rc=\$? >> /tmp/sim3/build-release.log; echo \"build end \$(date +%T) \$(uptime)\" >> /tmp/sim3/load.log"
echo "chain done $(date +%T)" >> load.log

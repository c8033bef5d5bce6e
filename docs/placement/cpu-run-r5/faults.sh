#!/bin/bash
# every 2 s: minor/major faults and cpu ticks of every llmux-old process
while true; do
  for P in $(pgrep -f "^/tmp/sim3/llmux-old"); do
    echo "$(date +%T.%N | cut -c1-12) $P $(awk '{print "minflt",$10,"majflt",$12,"utime",$14,"stime",$15}' /proc/$P/stat 2>/dev/null) nvcsw $(grep -E '^(non)?voluntary_ctxt' /proc/$P/status | awk '{print $2}' | tr '\n' ' ')" >> faults.log
  done
  sleep 2
done

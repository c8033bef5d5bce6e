#!/bin/bash
# every 5 s: time, /proc/stat cpu line, loadavg, top 3 cpu processes
while true; do
  echo "$(date +%T) $(head -1 /proc/stat) | $(cat /proc/loadavg) | $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -3 | tr '\n' ';')" >> monitor.log
  sleep 5
done

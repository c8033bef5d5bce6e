#!/usr/bin/env python3
"""Summarises the job trace of `LLMUX_TRACE_JOBS=1 llmux bench mux --device cuda` (stderr lines
`[  t] launch #T MODEL PHASE on P/Q: N tokens, S sequences (host X ms, forward F ms[, K cuBLASLt plans in
Y ms][, N alloc A ms][, N free B ms][, N wait C ms][, N kernel D ms][, N matmul E ms][, N slices over S ms])`
and `[  t] done #T`). Each engine starts with a line `[  t] partitions …` (and older traces restart the
clock), which starts a new segment (one per policy and rate, in the bench's order).

Per lane (mux: each model's decode lane and the shared prefill lane; temporal: the unit; spatial:
each model; the policy is read from the segment's label) it prints jobs, the host time of their
launches, the launches over 3 ms, the host seconds launches spent allocating, freeing, waiting,
launching kernels and calling cuBLASLt, how long a job
stayed in flight (launch end to collection), and the lane's idle gap: from the collection of one
job to the start of the next launch on the lane (host reaction, not device time).

Usage: python3 scripts/gpu/mux_trace.py LOG [LABEL ...]
"""
import re
import statistics
import sys

LAUNCH = re.compile(r"^\[\s*([\d.]+)\] launch #(\d+) (\S+) (prefill|decode) on (\d+)/(\d+): (\d+) tokens, (\d+) sequences "
                    r"\(host ([\d.]+) ms(?:, forward [\d.]+ ms)?(?:, (\d+) cuBLASLt plans in ([\d.]+) ms)?(.*)\)")
STALL = re.compile(r"(\d+) (alloc|free|wait|kernel|matmul) ([\d.]+) ms")
KINDS = ("alloc", "free", "wait", "kernel", "matmul")
DONE = re.compile(r"^\[\s*([\d.]+)\] done #(\d+)")


PARTITIONS = re.compile(r"^\[\s*[\d.]+\] partitions ")


def segments(lines):
    current, last = [], -1.0
    for line in lines:
        if PARTITIONS.match(line):
            # Every engine configures its partitions before its first job.
            if current:
                yield current
            current = []
            continue
        match = LAUNCH.match(line) or DONE.match(line)
        if not match:
            continue
        stamp = float(match.group(1))
        if stamp + 0.5 < last and current:
            yield current
            current = []
        last = stamp
        current.append(line)
    if current:
        yield current


def summarise(lines, label):
    launches, done = {}, {}
    for line in lines:
        if (match := LAUNCH.match(line)):
            stamp, ticket, model, phase = float(match.group(1)), int(match.group(2)), match.group(3), match.group(4)
            host = float(match.group(9))
            plans = float(match.group(11) or 0)
            stalls = {kind: float(ms) for _, kind, ms in STALL.findall(match.group(12) or "")}
            # A prompt job launched in slices spans more than its host time.
            span = re.search(r"slices over ([\d.]+) ms", match.group(12) or "")
            launches[ticket] = dict(end=stamp, start=stamp - (float(span.group(1)) if span else host) / 1000, model=model, phase=phase, host=host, plans=plans,
                                    **{kind: stalls.get(kind, 0) for kind in KINDS},
                                    tokens=int(match.group(7)), sequences=int(match.group(8)))
        elif (match := DONE.match(line)):
            done[int(match.group(2))] = float(match.group(1))
    lanes = {}
    for ticket in sorted(launches):
        job = launches[ticket]
        if label.startswith("temporal"):
            lane = "unit"   # one job at a time on the whole device
        elif label.startswith("spatial"):
            lane = f"model {job['model']}"
        else:
            lane = "prefill" if job["phase"] == "prefill" else f"decode {job['model']}"
        lanes.setdefault(lane, []).append((ticket, job))
    span = max(done.values(), default=0) - min((j["start"] for j in launches.values()), default=0)
    host_total = sum(j["host"] for j in launches.values()) / 1000
    print(f"\n== {label}: {len(launches)} jobs over {span:.1f} s; host time in launches {host_total:.2f} s "
          f"({100 * host_total / max(span, 1e-9):.0f} % of the span)")
    print(f"{'lane':<28} {'jobs':>5} {'seqs':>5} {'tokens':>6} {'host s':>7} {'>3ms':>5} {'>3ms s':>7} {'plans s':>7} {'flight ms p50':>13} "
          f"{'gap ms mean':>11} {'gap p50':>8} {'gap p90':>8} {'gaps s':>7} {'busy %':>7} " + " ".join(f"{kind + ' s':>8}" for kind in KINDS))
    for lane, jobs in sorted(lanes.items()):
        host = sum(j["host"] for _, j in jobs) / 1000
        slow = [j["host"] for _, j in jobs if j["host"] > 3]
        plans = sum(j["plans"] for _, j in jobs) / 1000
        flights = [done[t] - j["end"] for t, j in jobs if t in done]
        gaps = []
        for (previous, _), (_, job) in zip(jobs, jobs[1:]):
            if previous in done:
                gaps.append(max(0.0, job["start"] - done[previous]))
        busy = sum(done[t] - j["start"] for t, j in jobs if t in done)
        lane_span = (max(done.get(t, j["end"]) for t, j in jobs) - jobs[0][1]["start"]) or 1e-9
        p = lambda values, q: (statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else sum(values)) * 1000
        seqs = statistics.fmean(j["sequences"] for _, j in jobs)
        tokens = statistics.fmean(j["tokens"] for _, j in jobs)
        print(f"{lane:<28} {len(jobs):>5} {seqs:>5.0f} {tokens:>6.0f} {host:>7.2f} {len(slow):>5} {sum(slow) / 1000:>7.2f} {plans:>7.2f} "
              f"{(statistics.median(flights) * 1000 if flights else 0):>13.2f} "
              f"{(statistics.fmean(gaps) * 1000 if gaps else 0):>11.2f} {p(gaps, 50):>8.2f} {p(gaps, 90):>8.2f} "
              f"{sum(gaps):>7.2f} {100 * busy / lane_span:>7.1f} "
              + " ".join(f"{sum(j[kind] for _, j in jobs) / 1000:>8.2f}" for kind in KINDS))
    windows(launches, done, lanes)


def windows(launches, done, lanes, width=4.0):
    """Per lane and window of `width` seconds (by launch time): jobs, mean sequences, mean time
    in flight and mean gap before the launch, to see how a lane's pace changes as the load drains."""
    start = min(j["start"] for j in launches.values())
    end = max(done.values(), default=start)
    count = int((end - start) / width) + 1
    print(f"\n{'lane':<28} " + " ".join(f"{f'{i * width:.0f}-{(i + 1) * width:.0f}s':>19}" for i in range(count)))
    print(f"{'(jobs seqs flight gap)':<28}")
    for lane, jobs in sorted(lanes.items()):
        cells = []
        for i in range(count):
            rows = [(t, j, previous) for previous, (t, j) in zip([None] + jobs[:-1], jobs)
                    if i * width <= j["start"] - start < (i + 1) * width]
            if not rows:
                cells.append(f"{'-':>19}")
                continue
            seqs = statistics.fmean(j["sequences"] for _, j, _ in rows)
            flights = [done[t] - j["start"] for t, j, _ in rows if t in done]
            gaps = [max(0.0, j["start"] - done[p[0]]) for _, j, p in rows if p is not None and p[0] in done]
            flight = statistics.fmean(flights) * 1000 if flights else 0
            gap = statistics.fmean(gaps) * 1000 if gaps else 0
            cells.append(f"{len(rows):>4} {seqs:>4.0f} {flight:>5.1f} {gap:>4.1f}")
        print(f"{lane:<28} " + " ".join(cells))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1], errors="replace") as handle:
        lines = handle.read().splitlines()
    labels = sys.argv[2:]
    for index, segment in enumerate(segments(lines)):
        summarise(segment, labels[index] if index < len(labels) else f"segment {index + 1}")


if __name__ == "__main__":
    main()

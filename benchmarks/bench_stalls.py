"""How often does this machine stop a running loop? The floor under every deadline figure.

One process per CPU, pinned, at SCHED_FIFO (as the runtime's loops run; SCHED_OTHER where
refused), reads the clock in a tight loop and counts the gaps between two reads longer than
20 us .. 20 ms: time the CPU was taken from a thread that never gave it up (host preemption
of a virtual CPU, interrupts, SMIs, the kernel's own work). Nothing else of ours runs. Each
process spins half of every second and sleeps the other half, so the kernel's real-time
throttling (95 % of each second) never stops it and the machine stays usable.

The floor it gives: at a rate R, a stall longer than half a period on either loop's CPU can
cost a deadline, so (stalls longer than period/2 per second, both CPUs) / R is roughly the
share of deadlines the machine alone takes (a rough bound: a stall in the slack of a tick
costs nothing, one of many periods costs several). Compare it with bench_shm.py's misses,
measured right after, to tell the machine's misses from ours.

    .venv/bin/python benchmarks/bench_stalls.py [--seconds 10] [--rates 1000,2000,5000,10000]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

LIMITS_US = (20, 50, 100, 200, 500, 1000, 5000, 20000)

_PROBE = """
import json, os, sys, time
cpu, seconds = int(sys.argv[1]), float(sys.argv[2])
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    policy = "SCHED_FIFO"
except OSError:
    policy = "SCHED_OTHER"
import gc
gc.disable()
clock = time.monotonic_ns
gaps = []  # every gap over 20 us, in ns
spun = 0
end = clock() + int(seconds * 2e9)  # half of each second spins: twice the wall time
while clock() < end:
    stop = clock() + 500_000_000
    prev = clock()
    start = prev
    while True:
        t = clock()
        if t - prev > 20_000:
            gaps.append(t - prev)
        prev = t
        if t >= stop:
            break
    spun += prev - start
    time.sleep(0.5)
print(json.dumps({"cpu": cpu, "policy": policy, "spun_s": spun / 1e9, "gaps_ns": gaps}))
"""


def probe(cpus: list[int], seconds: float) -> list[dict[str, Any]]:
    procs = [subprocess.Popen([sys.executable, "-c", _PROBE, str(c), str(seconds)],
                              stdout=subprocess.PIPE, text=True) for c in cpus]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=seconds * 3 + 60)
        out.append(json.loads(stdout))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="spinning time per CPU")
    ap.add_argument("--rates", default="1000,2000,5000,10000")
    ap.add_argument("--json")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    print(f"load average {os.getloadavg()[0]:.1f} on {len(cpus)} CPUs; "
          f"{args.seconds:g} s of spinning per CPU (all CPUs at once)")
    rows = probe(cpus, args.seconds)
    print(f"{'cpu':>4}{'policy':>12}" + "".join(f"{'>' + _fmt(u):>8}" for u in LIMITS_US)
          + f"{'worst':>10}   (stalls per second of spinning)")
    for r in rows:
        gaps = r["gaps_ns"]
        per_s = [sum(1 for g in gaps if g > u * 1e3) / r["spun_s"] for u in LIMITS_US]
        worst = max(gaps, default=0) / 1e3
        print(f"{r['cpu']:>4}{r['policy']:>12}" + "".join(f"{x:>8.1f}" for x in per_s)
              + f"{worst:>8.0f}us")
    floors = {}
    for rate in (float(x) for x in args.rates.split(",")):
        half_period_ns = 0.5e9 / rate
        per_s = sum(sum(1 for g in r["gaps_ns"] if g > half_period_ns) / r["spun_s"]
                    for r in rows)
        floors[f"{rate:g}"] = per_s / rate
        print(f"at {rate:>6g} Hz: {per_s:6.1f} stalls/s longer than half a period "
              f"({half_period_ns / 1e3:g} us) on any CPU: ~{100 * per_s / rate:.2f} % of "
              "deadlines is the machine's")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_avg": os.getloadavg(), "cpus": cpus, "probes": rows,
                       "floors": floors}, f)
    return 0


def _fmt(us: int) -> str:
    return f"{us // 1000}ms" if us >= 1000 else f"{us}us"


if __name__ == "__main__":
    sys.exit(main())

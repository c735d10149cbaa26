"""Control-law compute time per step, and closed-loop simulation throughput.

For each registered controller (default gains):
- compute: `law.compute(state, t)` as the controller loop calls it, timed one call at a time
  with `perf_counter_ns` over states taken from a real closed-loop trajectory; median and p99.
- batch: closed-loop simulations of the DIP (`controller_client.tuning.simulate`: the law's
  kernel and the plant's RK4 kernel, 4 substeps, in one compiled loop) from the default start,
  run one after another and then on a thread pool (the loop releases the GIL); steps per second.

    .venv/bin/python benchmarks/bench_controllers.py [--calls 20000] [--runs 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from controller_client.controllers import create_controller, known_controllers
from controller_client.tuning import simulate

START = (0.0, 0.1, -0.05, 0.0, 0.0, 0.0)
DURATION_S = 5.0


def bench_compute(name: str, calls: int) -> dict[str, float]:
    law = create_controller(name)
    traj = np.zeros((round(DURATION_S / law.dt_s) + 1, 6))
    simulate(law, START, DURATION_S, trajectory=traj)
    states = [np.ascontiguousarray(s) for s in traj[: min(len(traj), calls)]]
    for s in states[:200]:  # warm: compiled, caches hot
        law.compute(s, 0.0)
    law.reset()
    clock = time.perf_counter_ns
    times = np.empty(calls)
    for i in range(calls):
        s = states[i % len(states)]
        t0 = clock()
        law.compute(s, 0.0)
        times[i] = clock() - t0
    return {"median_us": float(np.median(times)) / 1e3,
            "p99_us": float(np.percentile(times, 99)) / 1e3}


def bench_batch(name: str, runs: int, workers: int) -> dict[str, float]:
    law = create_controller(name)
    simulate(law, START, 0.1)  # compile
    steps = runs * round(DURATION_S / law.dt_s)
    t0 = time.perf_counter()
    for _ in range(runs):
        simulate(law, START, DURATION_S)
    sequential = steps / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: simulate(law, START, DURATION_S), range(runs)))
    parallel = steps / (time.perf_counter() - t0)
    return {"steps_per_s": sequential, "threaded_steps_per_s": parallel}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=32, help="simulations of 5 s per batch")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results = {}
    print(f"{'controller':<26}{'median us':>10}{'p99 us':>9}{'steps/s':>12}"
          f"{f'x{args.workers} threads':>14}")
    for name in known_controllers():
        if name == "swingup":  # swings up the cartpole and rotary: benchmarks/bench_swingup.py
            continue
        r = {**bench_compute(name, args.calls), **bench_batch(name, args.runs, args.workers)}
        results[name] = r
        print(f"{name:<26}{r['median_us']:>10.2f}{r['p99_us']:>9.2f}{r['steps_per_s']:>12,.0f}"
              f"{r['threaded_steps_per_s']:>14,.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`hil tune` throughput: closed-loop evaluations per second, and the compiled batch per core.

- evaluations/s (one candidate on every draw, 3 s at 1 kHz, classical SMC, the robust cost,
  through `Problem.costs` as `hil tune` calls it) with 1 and 2 local threads (numba prange)
  and through a Dask cluster of 2 local worker processes; the three are timed in turns
  (round r times each once), median over `--repeats` rounds; ratios to 1 thread;
- the compiled batch's plant steps per CPU-second (per core) and per wall-second, with 1 and
  2 threads, against the single-simulation loop (`controller_client.tuning.simulate`, one
  simulation per call) doing the same work: the same 20 candidates x 8 draws, in turns with
  the batch, the steps counted as run (an evaluation that falls stops early).

Why in turns and on equal work: this machine is shared, and a median of short timings
(one 3 s simulation takes ~4 ms) picks the runs nobody preempted, while a batch of ~1 s is
always preempted for its share; comparing the two, taken minutes apart, once showed the batch
at 0.53x the single loop although the compiled code runs as fast (docs/tuning.md, "Speed").
CPU time (`time.process_time`, all threads of this process) is the per-core figure that load
does not distort; wall figures are printed beside it.

    .venv/bin/python benchmarks/bench_tune.py [--batch 20] [--draws 8] [--repeats 5] [--no-dask]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from controller_client.controllers import create_controller
from controller_client.tuning import simulate
from controller_client.tuning.batch import M_STEPS, run_batch
from controller_client.tuning.engine import LocalEvaluator, Problem, law_factory
from controller_client.tuning.problem import Settings, law_bounds

NAME = "classical_smc"
DURATION_S = 3.0


def settings(draws: int, batch: int) -> Settings:
    lo, hi = law_bounds(create_controller(NAME))
    return Settings(NAME, lower=lo, upper=hi, draws=draws, batch_size=batch,
                    duration_s=DURATION_S)


def rows(s: Settings, batch: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    # around the defaults, where the zero dynamics are stable: every row is simulated
    return np.array(create_controller(NAME).gains) * rng.uniform(0.9, 1.1, (batch, len(s.lower)))


def timed(f: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s of this process, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = f()
    return time.perf_counter() - w0, time.process_time() - c0, result


def evaluations(s: Settings, batch_rows: np.ndarray, repeats: int, dask: bool
                ) -> dict[str, float]:
    """Evaluations/s (wall) per evaluator, the evaluators timed in turns."""
    problems: dict[str, Problem] = {
        "local, 1 thread": Problem(s, LocalEvaluator(NAME, {}, 1)),
        "local, 2 threads": Problem(s, LocalEvaluator(NAME, {}, 2)),
    }
    if dask:
        from controller_client.tuning.remote import DaskEvaluator

        problems["dask, 2 workers"] = Problem(s, DaskEvaluator(NAME, {}, workers=2))
    try:
        for p in problems.values():
            p.costs(batch_rows[:2])  # compile / warm the workers
        walls: dict[str, list[float]] = {label: [] for label in problems}
        for _ in range(repeats):
            for label, p in problems.items():
                walls[label].append(timed(lambda p=p: p.costs(batch_rows))[0])
    finally:
        for p in problems.values():
            p.evaluator.close()
    return {label: len(batch_rows) / statistics.median(w) for label, w in walls.items()}


def per_core(s: Settings, batch_rows: np.ndarray, repeats: int
             ) -> dict[str, tuple[float, float]]:
    """(steps per CPU-second, steps per wall-second) of the batch (1, 2 threads) and of the
    single-simulation loop on the same candidates x draws, timed in turns."""
    problem = Problem(s, LocalEvaluator(NAME, {}, 1))
    scenario = problem.train
    make = law_factory(NAME, {}, scenario.dt_s)
    start = scenario.starts[0]
    laws = [make(tuple(r)) for r in batch_rows]
    draws = scenario.plant_params.shape[0]

    def batch(threads: int) -> Callable[[], float]:
        def run() -> float:
            numba.set_num_threads(threads)
            return float(run_batch(make, batch_rows, scenario)[..., M_STEPS].sum())
        return run

    def single() -> float:  # one simulate() per candidate x draw, as many evaluations
        return float(sum(simulate(law, start, DURATION_S).steps
                         for law in laws for _ in range(draws)))

    runs = {"single-simulation loop": single, "compiled batch, 1 thread": batch(1),
            "compiled batch, 2 threads": batch(2)}
    for f in runs.values():
        f()  # compile
    figures: dict[str, list[tuple[float, float]]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, f in runs.items():
            wall, cpu, steps = timed(f)
            figures[label].append((steps / cpu, steps / wall))
    return {label: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
            for label, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cluster")
    args = parser.parse_args()
    s = settings(args.draws, args.batch)
    batch_rows = rows(s, args.batch)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"load average {load} on {numba.config.NUMBA_NUM_THREADS} cores; medians of "
          f"{args.repeats} rounds\n")
    figures = evaluations(s, batch_rows, args.repeats, not args.no_dask)
    base = figures["local, 1 thread"]
    print(f"{'where':<20}{'evaluations/s':>15}{'ratio':>8}   ({args.draws} draws x "
          f"{DURATION_S:g} s each)")
    for label, value in figures.items():
        print(f"{label:<20}{value:>15.2f}{value / base:>8.2f}")
    steps = per_core(s, batch_rows, args.repeats)
    ref_cpu, ref_wall = steps["single-simulation loop"]
    print(f"\n{'plant steps':<28}{'per CPU-s':>12}{'ratio':>7}{'per wall-s':>13}{'ratio':>7}")
    for label, (cpu, wall) in steps.items():
        print(f"{label:<28}{cpu:>12,.0f}{cpu / ref_cpu:>7.2f}{wall:>13,.0f}"
              f"{wall / ref_wall:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

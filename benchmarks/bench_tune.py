"""`hil tune` throughput: closed-loop evaluations per second, and the compiled batch per core.

- evaluations/s (one candidate on every draw, 3 s at 1 kHz, classical SMC, the robust cost)
  with 1 and 2 local threads (numba prange) and through a Dask cluster of 2 local worker
  processes, one batch after another, median of `--repeats` batches; ratios to 1 thread;
- the compiled batch's plant steps/s per core (1 thread) against the single-simulation loop
  (`controller_client.tuning.simulate`, one simulation per call), same run.

    .venv/bin/python benchmarks/bench_tune.py [--batch 20] [--draws 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from controller_client.controllers import create_controller
from controller_client.tuning import simulate
from controller_client.tuning.engine import LocalEvaluator, Problem
from controller_client.tuning.problem import Settings, law_bounds
from controller_client.tuning.remote import DaskEvaluator

NAME = "classical_smc"


def settings(draws: int, batch: int) -> Settings:
    lo, hi = law_bounds(create_controller(NAME))
    return Settings(NAME, lower=lo, upper=hi, draws=draws, batch_size=batch)


def rows(s: Settings, batch: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    # around the defaults, where the zero dynamics are stable: every row is simulated
    return np.array(create_controller(NAME).gains) * rng.uniform(0.9, 1.1, (batch, len(s.lower)))


def evals_per_s(problem: Problem, batch_rows: np.ndarray, repeats: int) -> float:
    problem.costs(batch_rows[:2])  # compile / warm the workers
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem.costs(batch_rows)
        times.append(time.perf_counter() - t0)
    return len(batch_rows) / statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    s = settings(args.draws, args.batch)
    batch_rows = rows(s, args.batch)
    figures = {}
    for label, make in (("local, 1 thread", lambda: LocalEvaluator(NAME, {}, 1)),
                        ("local, 2 threads", lambda: LocalEvaluator(NAME, {}, 2)),
                        ("dask, 2 workers", lambda: DaskEvaluator(NAME, {}, workers=2))):
        evaluator = make()
        try:
            figures[label] = evals_per_s(Problem(s, evaluator), batch_rows, args.repeats)
        finally:
            evaluator.close()
    base = figures["local, 1 thread"]
    print(f"{'where':<20}{'evaluations/s':>15}{'ratio':>8}   ({args.draws} draws x 3 s each)")
    for label, value in figures.items():
        print(f"{label:<20}{value:>15.2f}{value / base:>8.2f}")
    steps_per_eval = args.draws * 3000
    batch_steps = base * steps_per_eval
    law = create_controller(NAME)
    simulate(law, (0, 0.1, -0.05, 0, 0, 0), 0.1)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        simulate(law, (0, 0.1, -0.05, 0, 0, 0), 3.0)
        times.append(time.perf_counter() - t0)
    single = 3000 / statistics.median(times)
    print(f"compiled batch, 1 thread: {batch_steps:,.0f} steps/s; single-simulation loop: "
          f"{single:,.0f} steps/s; ratio {batch_steps / single:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

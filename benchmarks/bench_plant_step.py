"""One plant step of the double inverted pendulum from Python: the numba model vs NumPy.

Both do the same work: one 1 kHz step (dt = 1 ms) of RK4 with the model's default substeps,
force held constant. The compiled side is ``DIPModel.step`` as the plant loop calls it; the
reference side is the plain NumPy RK4 of the tests' reference dynamics
(``tests/hil/dynamics/reference_dynamics.py``). Each repetition times a batch of calls and
reports microseconds per call; the table shows medians over the repetitions, alternated so
that machine noise hits both alike. Targets: the model <= 2 us per call and >= 30x faster.

    .venv/bin/python benchmarks/bench_plant_step.py [--reps 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hil" / "dynamics"))

import reference_dynamics as ref  # noqa: E402

from hil.dynamics.dip import DIPModel  # noqa: E402

DT_S = 1e-3
STATE = np.array([0.1, 0.3, -0.2, 0.5, 1.0, -1.5])
FORCE_N = 2.0
TARGET_US = 2.0
TARGET_RATIO = 30.0


def per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / calls / 1e3


def measure(reps: int, model_calls: int, reference_calls: int) -> dict[str, object]:
    model = DIPModel()
    mech = ref.dip_mechanism(model.params)
    out = np.empty(6)
    step = model.step  # what the plant loop holds

    def model_step() -> None:
        step(STATE, FORCE_N, DT_S, out)

    def reference_step() -> np.ndarray:
        return ref.step(mech, STATE, FORCE_N, DT_S, model.substeps)

    model_step()  # compiles (or loads from the cache) and warms both sides
    ref.assert_matches_reference(out, reference_step())  # same work, same answer
    model_us, reference_us = [], []
    for _ in range(reps):
        model_us.append(per_call_us(model_step, model_calls))
        reference_us.append(per_call_us(reference_step, reference_calls))
    model_median = statistics.median(model_us)
    reference_median = statistics.median(reference_us)
    speedup = reference_median / model_median
    return {
        "benchmark": "plant_step",
        "model": "dip",
        "dt_s": DT_S,
        "substeps": model.substeps,
        "reps": reps,
        "model_step_us": model_median,
        "reference_step_us": reference_median,
        "speedup": speedup,
        "model_step_us_all": model_us,
        "reference_step_us_all": reference_us,
        "targets": {"model_step_us_max": TARGET_US, "speedup_min": TARGET_RATIO},
        "meets_targets": model_median <= TARGET_US and speedup >= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions (median is reported)")
    parser.add_argument("--calls", type=int, default=200_000, help="model calls per repetition")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.calls < 1:
        parser.error("--reps and --calls must be >= 1")
    result = measure(args.reps, args.calls, max(1, args.calls // 1000))
    print(f"DIP plant step, dt = {DT_S * 1e3:g} ms, RK4 x {result['substeps']} substeps, "
          f"median of {args.reps}")
    print(f"{'':24}{'us/call':>10}")
    print(f"{'DIPModel.step (numba)':24}{result['model_step_us']:>10.3f}")
    print(f"{'NumPy reference':24}{result['reference_step_us']:>10.1f}")
    print(f"{'speedup':24}{result['speedup']:>9.0f}x")
    verdict = "meets" if result["meets_targets"] else "MISSES"
    print(f"{verdict} targets: <= {TARGET_US:g} us per call, >= {TARGET_RATIO:g}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a hil process's start-up and exit cost, with Python's garbage collection as it comes
and as the hil programs set it.

A child Python imports what hil-plant and hil-controller import, builds and warms the
default config's plant model and law (numba's cache loads: the objects a real run leaves),
prints a timestamp, and exits. Variants:

- `plain`: Python's collector thresholds, `sys.exit` (the interpreter's final collections);
- `leave`: the same start-up, then `hil.app.exits.leave` (gc.freeze, then sys.exit);
- `program`: what the programs do now: the start-up thresholds of
  hil/app/early_signals.py (collect every 50 000 allocations), then `leave`.

Figures: the wall time from the child's timestamp to the parent reaping it (the exit), and
the child's whole CPU time. Variants take turns, so machine noise hits them alike; medians
of the repetitions.

    .venv/bin/python benchmarks/bench_exit.py [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import gc, sys, time
if sys.argv[1] == "program":
    from hil.app.early_signals import START_UP_GC_THRESHOLDS
    gc.set_threshold(*START_UP_GC_THRESHOLDS)
import numpy as np
import plant_server.main, controller_client.main
from controller_client.main import law_from_config
from hil.config import build_plant_model, load_config
config = load_config(None)
model = build_plant_model(config)
x = np.asarray(config.plant.initial_state, dtype=float)
model.step(x, np.zeros(1), 1e-3, x)
law = law_from_config(config)
law.compute(np.zeros(6), 0.0)
sys.stdout.write(str(time.monotonic_ns()))
sys.stdout.flush()
if sys.argv[1] != "plain":
    from hil.app.exits import leave
    leave(0)
sys.exit(0)
"""


def one(variant: str) -> tuple[float, float]:
    """(ms from the child's timestamp to its reaping, the child's CPU seconds)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, variant], cwd=ROOT,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    stamp = int(proc.stdout.read() or 0)
    _, status, usage = os.wait4(proc.pid, 0)
    reaped = time.monotonic_ns()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or stamp == 0:
        raise SystemExit(f"bench_exit: the {variant} child failed ({proc.returncode})")
    return (reaped - stamp) / 1e6, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    one("plain")  # numba's caches warm, files in the page cache
    variants = ["plain", "leave", "program"]
    figures: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for rep in range(args.reps):
        for variant in (variants if rep % 2 == 0 else variants[::-1]):
            figures[variant].append(one(variant))
    print(f"{'variant':<8} {'exit ms (median)':>17} {'child CPU s (median)':>21}")
    for variant, runs in figures.items():
        print(f"{variant:<8} {statistics.median(r[0] for r in runs):>17.1f} "
              f"{statistics.median(r[1] for r in runs):>21.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

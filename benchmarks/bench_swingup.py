"""Swing-up success rate and time over seeded starting angles near hanging, by batch
simulation in-process: the plant model's compiled RK4 step and the law's own compute, as a
lockstep run steps them (the control computed from a state is held over the next period), no
processes.

For a config (default: both swing-up configs), `--runs` starts (100) at rest with the arm or
cart at zero and the angle pi + U(-spread, spread) (`--spread` 0.2 rad, `--seed` 0, PCG64),
each run for the config's `run.duration_s` at its rate, with its plant parameters and law.
The swing-up time is the report's metric (hil/experiment/metrics.py `swingup_time`: the first
entry into the config's `experiment.swingup` window held to the end); a start succeeds when it
is caught within the config's `gates.metrics` bound on `swingup.time_s` and held, with the
input within its limits throughout.

    .venv/bin/python benchmarks/bench_swingup.py [--config configs/rotary-swingup.yaml ...]
        [--runs 100] [--seed 0] [--spread 0.2] [--set KEY=VALUE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controller_client.main import law_from_config
from hil.config import Config, build_plant_model, load_config
from hil.experiment.metrics import swingup_time

CONFIGS = ("configs/rotary-swingup.yaml", "configs/cartpole-swingup.yaml")


def starts(runs: int, seed: int, spread: float, size: int) -> np.ndarray:
    """`runs` states at rest: base 0, angle pi + U(-spread, spread)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    x = np.zeros((runs, size))
    x[:, 1] = math.pi + rng.uniform(-spread, spread, runs)
    return x


def simulate(config: Config, model: Any, law: Any, start: np.ndarray) -> dict[str, Any]:
    """One closed loop from `start`: its swing-up metric and largest |input| and |base|."""
    dt = 1.0 / config.run.rate_hz
    steps = round(config.run.duration_s * config.run.rate_hz)
    spec = config.experiment.swingup if config.experiment is not None else None
    assert spec is not None, "the config needs an experiment.swingup section"
    index = list(model.state_names).index(spec.state or model.wraps[0])
    x = start.copy()
    angle, peak_u, peak_base = np.empty(steps + 1), 0.0, 0.0
    law.reset()
    for k in range(steps):
        angle[k] = x[index]
        u = float(law.compute(x, k * dt))
        peak_u, peak_base = max(peak_u, abs(u)), max(peak_base, abs(float(x[0])))
        model.step(x, u, dt, x)
    angle[steps] = x[index]
    error = angle - 2.0 * math.pi * np.floor((angle + math.pi) / (2.0 * math.pi))
    times = np.arange(steps + 1) * dt
    return {**swingup_time(times, error, spec.window_rad, spec.hold_s), "peak_u": peak_u,
            "peak_base": peak_base}


def bench(path: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(path, overrides)
    model = build_plant_model(config)
    law = law_from_config(config, model)
    bound = config.gates.metrics.get("swingup.time_s", math.inf)
    t0 = time.perf_counter()
    results = [simulate(config, model, law, s)
               for s in starts(args.runs, args.seed, args.spread, len(model.state_names))]
    wall = time.perf_counter() - t0
    times = np.array([r["time_s"] for r in results if r["caught"]])
    ok = [r["caught"] and r["time_s"] <= bound and r["peak_u"] <= model.max_force_n
          for r in results]
    return {"config": path, "overrides": overrides, "plant": model.name, "runs": args.runs,
            "success_rate": sum(ok) / len(ok), "caught": int(times.size), "bound_s": bound,
            "median_s": float(np.median(times)) if times.size else None,
            "p90_s": float(np.percentile(times, 90)) if times.size else None,
            "max_s": float(times.max()) if times.size else None,
            "peak_base": max(r["peak_base"] for r in results), "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="a swing-up config (repeatable)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.2, help="rad either side of pi")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every config, as hil run's")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    print(f"{'config':<32}{'success':>8}{'median s':>10}{'p90 s':>8}{'max s':>8}"
          f"{'max |base|':>11}{'wall s':>8}")
    results = []
    for path in args.config or CONFIGS:
        r = bench(path, overrides, args)
        results.append(r)
        print(f"{Path(path).name:<32}{r['success_rate']:>8.0%}{_s(r['median_s']):>10}"
              f"{_s(r['p90_s']):>8}{_s(r['max_s']):>8}{r['peak_base']:>11.2f}"
              f"{r['wall_s']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())

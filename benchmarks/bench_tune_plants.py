"""`hil tune`'s simulation core per kind of plant: closed-loop steps per CPU-second (one core).

Each case runs `batch.run_batch` as the tuning does (the law built per candidate, every draw,
the gates and figures) on one thread, and counts the steps actually run (an evaluation that
trips a gate stops early). CPU time (`time.process_time`) is the per-core figure that a
shared machine's load does not distort; the cases are timed in turns, median over
`--repeats` rounds, after one warm-up call each (numba's cache loaded, nothing compiled in
the timing).

- compiled built-in: the rotary pendulum's own RK4 kernel, the LQR's plant kernel; the
  DIP's with the classical SMC (bench_tune.py's case);
- a lab's plant with a `derivatives_kernel` (the runtime's RK4 over it), the LQR;
- a lab's plant in pure Python (`derivatives` through the runtime's `model.step`), the LQR;
- the same plant with a lab's Python law (both in Python);
- the lab's step-response experiment (configs/cartpole-step-tune.yaml: a step reference, a
  push, an encoder and a noisy, quantised, late cart position; lqr tracking the target) with
  its metrics measured per evaluation (the cost `tuning.cost` weighs), against the same
  scenario without the experiment (regulation to the equilibrium, the figures only).

The lab's plant and law are those of the tests (tests/controller_client/tuning_plugins.py),
written into a temporary folder.

    .venv/bin/python benchmarks/bench_tune_plants.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from controller_client.tuning.batch import M_STEPS, Scenario, run_batch
from controller_client.tuning.engine import Problem, law_factory
from controller_client.tuning.plants import (
    draw_params,
    packed_params,
    plant_facts,
    plant_model,
    plant_spec,
)
from controller_client.tuning.problem import Settings
from hil.config import load_config

ROOT = Path(__file__).resolve().parents[1]

START = (0.0, 0.1, 0.0, 0.0)
DIP_START = (0.0, 0.1, -0.05, 0.0, 0.0, 0.0)


def case(model: str, law: str, search_path: tuple[str, ...], steps: int, rows: int,
         draws: int) -> tuple[Any, np.ndarray, Scenario]:
    spec = plant_spec(model, {}, 4, search_path)
    d = draw_params(spec, 0, 0, draws, 0.05)
    start = DIP_START if model == "dip" else START
    sc = Scenario(spec, d, packed_params(spec, d), np.array([start]), steps, 1e-3, 4, 1.0,
                  plant_facts(plant_model(spec), 1.0, None, 10.0))
    make = law_factory(law, {}, 1e-3, search_path, spec)
    gains = np.array(make(None).default_gains, dtype=float)
    return make, gains * np.linspace(0.9, 1.1, rows)[:, None], sc


def experiment_cases(rows: int, draws: int) -> dict[str, tuple[Any, np.ndarray, Scenario]]:
    """configs/cartpole-step-tune.yaml's scenario (8 s at 500 Hz, lockstep) with and without
    its experiment."""
    config = load_config(ROOT / "configs" / "cartpole-step-tune.yaml")
    assert config.experiment is not None
    settings = Settings(
        controller="lqr", draws=draws, seed=0, duration_s=config.run.duration_s,
        rate_hz=config.run.rate_hz, delay=0.0, starts=(tuple(config.plant.initial_state),),
        plant_model="cartpole", track_limit_m=config.safety.track_limit_m,
        angle_limit_rad=config.safety.angle_limit_rad.lockstep,
        experiment=config.experiment.model_dump(mode="json"), cost=dict(config.tuning.cost))
    problem = Problem(settings, None)
    gains = np.array(problem.default_gains) * np.linspace(0.9, 1.1, rows)[:, None]
    plain = dataclasses.replace(problem.train, experiment=None, noise=None)
    return {"cart-pole step experiment (lqr, compiled)": (problem.make_law, gains,
                                                          problem.train),
            "the same without the experiment": (problem.make_law, gains, plain)}


def steps_per_cpu_s(make: Any, rows: np.ndarray, sc: Scenario) -> float:
    c0 = time.process_time()
    metrics = run_batch(make, rows, sc)
    return float(metrics[..., M_STEPS].sum()) / (time.process_time() - c0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    numba.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "controller_client"))
    from tuning_plugins import write_plugins

    lab = (str(write_plugins(Path(tempfile.mkdtemp(prefix="bench_tune_")))),)
    cases = {
        "compiled built-in (rotary, lqr)": case("rotary", "lqr", (), 2000, 10, 4),
        "compiled built-in (dip, classical_smc)": case("dip", "classical_smc", (), 2000, 10,
                                                       4),
        "lab plant with derivatives_kernel (lqr)": case("labcart:KernelCart", "lqr", lab,
                                                        2000, 10, 4),
        "lab plant in pure Python (lqr)": case("labcart:Cart", "lqr", lab, 500, 2, 1),
        "lab plant and lab law, both Python": case("labcart:Cart", "lablaw:Balance", lab,
                                                   500, 2, 1),
        **experiment_cases(10, 2),
    }
    for make, rows, sc in cases.values():  # warm-up: load numba's cache, build the models
        run_batch(make, rows[:1], sc)
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (make, rows, sc) in cases.items():
            figures[name].append(steps_per_cpu_s(make, rows, sc))
    base = statistics.median(figures[next(iter(cases))])
    print(f"{'closed-loop steps per CPU-second, 1 thread':44s} {'median':>12s} {'ratio':>8s}")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:44s} {median:12,.0f} {median / base:8.4f}")


if __name__ == "__main__":
    main()

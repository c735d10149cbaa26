"""The cart-pole as an FMU against the built-in numba cart-pole, side by side in one run.

The FMU is tests/fmu/c/cartpole.c (the same equations), built here with the system compiler
(tests/fmu/fmubuild.py), as model exchange (the runtime's RK4 over its derivatives) and as
co-simulation (its own RK4 in doStep). Two parts, variants alternated in each repetition so
machine noise hits all alike; medians over the repetitions:

1. `step`: one plant step as the plant loop calls it (1 ms, 4 substeps), microseconds per
   call: the built-in model, the FMU as model exchange, the FMU as co-simulation. Target:
   the FMU <= 10 us per step.
2. `lockstep`: `hil run --mode lockstep` with the generic LQR on the built-in model and on the
   model exchange FMU: closed-loop cycles per second of wall time (from the plant's
   recording), the median cycle (its inverse is the rate when the machine takes nothing from
   the loop: on a shared machine the wall-time rate is set by its stalls), the plant's round
   trip p50 and its own work per cycle (p50). Target: the FMU's cycles/s >= 80 % of the
   built-in's (`fmu_share`; `fmu_share_at_p50` from the median cycles).

    .venv/bin/python benchmarks/bench_fmu.py [--parts step,lockstep] [--reps 3]
        [--duration 10] [--transport shm] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fmu"))

import fmubuild  # noqa: E402

from hil.dynamics import create_model  # noqa: E402

DT_S = 1e-3
STEP_CALLS = 100_000
TARGET_STEP_US = 10.0
TARGET_SHARE = 0.8
INITIAL = [0.0, 0.1, 0.0, 0.0]


def build(folder: Path) -> dict[str, Path]:
    binary = fmubuild.compile_binary(folder)
    return {"me": fmubuild.pack(folder / "me.fmu", fmubuild.GOOD, binary),
            "cs": fmubuild.pack(folder / "cs.fmu", replace(fmubuild.GOOD, kind="CoSimulation"),
                                binary)}


def per_step_us(model: Any, calls: int = STEP_CALLS) -> float:
    state, out, u = np.array(INITIAL), np.empty(4), np.zeros(1)
    step = model.step  # what the plant loop holds
    step(state, u, DT_S, out)  # compiles or loads the kernels
    start = time.perf_counter_ns()
    for _ in range(calls):
        step(state, u, DT_S, out)
    return (time.perf_counter_ns() - start) / calls / 1e3


def step_part(fmus: dict[str, Path], reps: int) -> dict[str, float]:
    models = {"builtin": create_model("cartpole"),
              "fmu_me": create_model("fmu", fmu=str(fmus["me"])),
              "fmu_cs": create_model("fmu", fmu=str(fmus["cs"]),
                                     fmu_outputs=["x", "theta", "x_dot", "theta_dot"])}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(reps):
        for name, model in models.items():
            times[name].append(per_step_us(model))
    return {f"{name}_step_us": statistics.median(v) for name, v in times.items()}


def config(folder: Path, fmu: Path | None) -> Path:
    path = folder / ("fmu.yaml" if fmu else "builtin.yaml")
    plant = (f"  model: fmu\n  fmu: {fmu}\n" if fmu else "  model: cartpole\n")
    path.write_text(f"controller: {{name: lqr}}\nplant:\n{plant}  initial_state: {INITIAL}\n"
                    "record: {html: false, history_db: null}\n")
    return path


def lockstep_run(cfg: Path, out: Path, duration_s: float, transport: str) -> dict[str, float]:
    from hil.recording.recorder import read_recording

    hil = Path(sys.executable).with_name("hil")
    done = subprocess.run([str(hil), "run", "--config", str(cfg), "--out", str(out), "--mode",
                    "lockstep", "--endpoint", f"ipc://{out.parent}/{out.name}.ipc", "--set",
                    f"run.duration_s={duration_s}", "--set", f"run.transport={transport}"],
                   capture_output=True, text=True, timeout=900, check=False)
    report = json.loads((out / "report.json").read_text())
    rec = read_recording(out / "plant.rec")
    if len(rec["t_ns"]) < 2:
        raise RuntimeError(f"{cfg.name}: no cycles recorded; hil run said:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    t = rec["t_ns"].astype(np.int64)
    round_trip = rec["round_trip_ns"].astype(np.int64)
    return {"cycles_per_s": len(t) / ((t[-1] - t[0]) / 1e9),
            # The median cycle: what a cycle costs when the machine takes nothing from it.
            "cycle_p50_us": float(np.median(np.diff(t))) / 1e3,
            "round_trip_p50_us": report["latency_us"]["round_trip"]["p50"],
            # The plant's own work per cycle (robust to the machine's stalls): from a
            # control's arrival (its state's stamp + round trip) to the next state's stamp.
            "plant_turn_p50_us": float(np.median(t[2:] - t[1:-1] - round_trip[2:])) / 1e3,
            "passed": float(report["verdict"] == "PASS")}


def lockstep_part(fmus: dict[str, Path], folder: Path, reps: int, duration_s: float,
                  transport: str) -> dict[str, float]:
    configs = {"builtin": config(folder, None), "fmu_me": config(folder, fmus["me"])}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for rep in range(reps):
        for name, cfg in configs.items():
            runs[name].append(lockstep_run(cfg, folder / f"{name}-{rep}", duration_s,
                                           transport))
    figures: dict[str, float] = {}
    for name, rows in runs.items():
        for key in rows[0]:
            figures[f"{name}_{key}"] = statistics.median(r[key] for r in rows)
    figures["fmu_share"] = figures["fmu_me_cycles_per_s"] / figures["builtin_cycles_per_s"]
    figures["fmu_share_at_p50"] = figures["builtin_cycle_p50_us"] / figures["fmu_me_cycle_p50_us"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="step,lockstep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--transport", default="shm", choices=("shm", "zmq"))
    parser.add_argument("--json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fmu-") as tmp:
        folder = Path(tmp)
        fmus = build(folder)
        if "step" in parts:
            results.update(step_part(fmus, args.reps))
        if "lockstep" in parts:
            results.update(lockstep_part(fmus, folder, args.reps, args.duration,
                                         args.transport))
    for key, value in results.items():
        print(f"{key:32s} {value:12.2f}")
    ok = all([results.get("fmu_me_step_us", 0) <= TARGET_STEP_US,
              results.get("fmu_cs_step_us", 0) <= TARGET_STEP_US,
              results.get("fmu_share", 1) >= TARGET_SHARE])
    print(f"targets (step <= {TARGET_STEP_US} us, lockstep >= {TARGET_SHARE:.0%} of the "
          f"built-in's cycles/s): {'held' if ok else 'NOT held'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

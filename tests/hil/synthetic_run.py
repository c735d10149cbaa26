"""A run folder made without running anything: the JSON, config and recordings a run leaves.

The figures are synthetic but shaped like a real 1 kHz run of the double inverted pendulum:
a decaying oscillation, lognormal latencies with a tail, a few late wake-ups.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hil.config import dump_config, load_config
from hil.recording.recorder import Recorder, controller_columns, plant_columns
from hil.reporting.report import build_report
from hil.runtime.latency import LatencyMonitor

STATE_NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]
STATE_UNITS = ["m", "rad", "rad", "m/s", "rad/s", "rad/s"]
T0_NS = 5_000_000_000_000
PERIOD_NS = 1_000_000


def make_run(folder: Path, run_id: str = "20261126-120000-abcdef", steps: int = 2000,
             seed: int = 1, recordings: bool = True, rt_scale: float = 1.0,
             lockstep: bool = False) -> Path:
    """`lockstep`: the recordings' lateness columns are 0, as lockstep writes them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = load_config(None, {"run.duration_s": steps / 1000})
    plant_mon = LatencyMonitor(("round_trip", "controller_to_plant", "plant_lateness"))
    ctrl_mon = LatencyMonitor(("state_to_controller", "compute", "controller_lateness"))
    lateness = (rng.lognormal(1.0, 1.0, steps) * 1000).astype(np.int64)
    lateness[rng.integers(0, steps, 5)] += 400_000
    for i in range(steps):
        plant_mon.record_ns("round_trip", int(rt_scale * rng.lognormal(12.9, 0.12)))
        plant_mon.record_ns("controller_to_plant", int(rng.lognormal(11.4, 0.3)))
        plant_mon.record_ns("plant_lateness", int(lateness[i]))
        plant_mon.record_deadline(i % 400 != 7)
        ctrl_mon.record_ns("state_to_controller", int(rng.lognormal(11.6, 0.3)))
        ctrl_mon.record_ns("compute", int(rng.lognormal(8.2, 0.2)))
        ctrl_mon.record_ns("controller_lateness", int(rng.lognormal(0.5, 1.2) * 1000))
    t = np.arange(steps) * 1e-3
    decay = np.exp(-2.5 * t)
    states = np.stack([-0.3 * (1 - decay), 0.1 * decay * np.cos(9 * t),
                       -0.05 * decay * np.cos(9 * t + 0.4), 0.75 * decay,
                       -0.9 * decay * np.sin(9 * t), 0.45 * decay * np.sin(9 * t + 0.4)], axis=1)
    force = np.clip(-400 * decay * np.cos(9 * t + 0.2), -150, 150)
    sigma = 2.0 * decay * np.cos(9 * t)
    rec_stats = {"rows_written": steps, "rows_dropped": 0, "rows_rejected": 0}
    desc = {"name": "dip", "state_names": STATE_NAMES, "state_units": STATE_UNITS,
            "max_force_n": 150.0}
    plant_stats = plant_mon.statistics().to_dict()
    plant = {
        "process": "plant", "end_reason": "duration", "exit_code": 0, "duration_s": steps / 1000,
        "cycles": steps, "plant": desc, "final_state": states[-1].tolist(),
        "latency_us": plant_stats["figures"], "deadline": plant_stats["deadline"],
        "histograms": plant_mon.encode(), "watchdog": {"trips": 0, "latched": False},
        "controls_applied": steps - 5, "recording": rec_stats,
    }
    controller = {
        "process": "controller", "end_reason": "plant ended the run: duration", "exit_code": 0,
        "controller": "classical_smc", "gains": [2, 15, 30, 8, 35, 5],
        "latency_us": ctrl_mon.statistics().to_dict()["figures"],
        "histograms": ctrl_mon.encode(), "recording": rec_stats,
    }
    report = build_report(run_id, config.model_dump(mode="json"), plant, controller)
    report["started_at"] = "2026-11-26T12:00:00Z"
    for name, data in (("plant", plant), ("controller", controller), ("report", report)):
        (folder / f"{name}.json").write_text(json.dumps(data, indent=1))
    (folder / "config.yaml").write_text(dump_config(config))
    if recordings:
        _record(folder, steps, states, force, sigma, lateness * (not lockstep), rng,
                lockstep)
    return folder


def _record(folder: Path, steps: int, states: np.ndarray, force: np.ndarray,
            sigma: np.ndarray, lateness: np.ndarray, rng: Any, lockstep: bool) -> None:
    lazy = {"flush_interval_s": 60.0, "fsync_interval_s": 0.0, "max_rows_per_chunk": 100}
    with Recorder(folder / "plant.rec", plant_columns(STATE_NAMES, STATE_UNITS),
                  {"process": "plant"}, **lazy) as plant_rec, \
            Recorder(folder / "controller.rec", controller_columns(STATE_NAMES, STATE_UNITS),
                     {"process": "controller"}, **lazy) as ctrl_rec:
        for i in range(steps):
            t_ns = T0_NS + i * PERIOD_NS + int(lateness[i])
            held = force[i - 1] if i else 0.0
            plant_rec.record((i, t_ns, i * 1e-3, *states[i].tolist(), held, 0,
                              int(lateness[i]), i - 1, i - 1,
                              int(rng.lognormal(12.9, 0.12)) if i else -1))
            rx = t_ns + int(rng.lognormal(11.6, 0.3))
            compute = int(rng.lognormal(8.2, 0.2))
            ctrl_rec.record((i, i, t_ns, rx, rx + 300_000 + compute, compute,
                             0 if lockstep else int(rng.lognormal(0.5, 1.2) * 1000),
                             *states[i].tolist(),
                             float(force[i]), float(sigma[i]), 40.0 + 5 * np.cos(states[i, 2])))

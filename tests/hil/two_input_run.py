"""A run folder of a two-input plant made without running anything (a planar bicopter: two
thrusts in N, each within 0..40 N), as the processes write it with several inputs: the
plant's description with `input_names`, `input_units`, `input_limits` and no legacy input
keys, recordings with one column per input (hil.recording.recorder.plant_columns with an
`Inputs`). The JSON reports come from synthetic_run (a DIP's figures), their plant
description replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from synthetic_run import PERIOD_NS, T0_NS, make_run

from hil.dynamics.inputs import Inputs
from hil.recording.recorder import Recorder, controller_columns, plant_columns

NAMES = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
UNITS = ("m", "m", "rad", "m/s", "m/s", "rad/s")
INPUTS = Inputs(("thrust_left", "thrust_right"), ("N", "N"), (0.0, 0.0), (40.0, 40.0))
DESCRIPTION: dict[str, Any] = {
    "name": "bicopter", "state_names": list(NAMES), "state_units": list(UNITS),
    **INPUTS.describe(), "equilibrium": [0.0] * 6, "equilibrium_input": [19.62, 19.62],
    "regulated": ["x", "z", "phi"], "wraps": ["phi"],
}


def thrusts(steps: int) -> np.ndarray:
    """(steps, 2): the two thrusts, distinct, the left one reaching its upper limit."""
    t = np.arange(steps) * 1e-3
    left = np.clip(19.62 + 30 * np.exp(-3 * t) * np.cos(7 * t), 0.0, 40.0)
    right = 19.62 - 8 * np.exp(-3 * t) * np.sin(7 * t)
    return np.stack([left, right], axis=1)


def make_two_input_run(folder: Path, steps: int = 600) -> Path:
    """`folder` as a finished run of the bicopter: JSON reports, config, both recordings."""
    make_run(folder, steps=steps, recordings=False)
    for name in ("plant.json", "report.json"):
        doc = json.loads((folder / name).read_text())
        doc["plant"] = DESCRIPTION
        doc["final_state"] = [0.0] * 6
        (folder / name).write_text(json.dumps(doc, indent=1))
    t = np.arange(steps) * 1e-3
    decay = np.exp(-3 * t)
    states = np.stack([0.2 * decay, -0.1 * decay, 0.05 * decay * np.cos(7 * t),
                       -0.6 * decay, 0.3 * decay, -0.35 * decay * np.sin(7 * t)], axis=1)
    u = thrusts(steps)
    lazy = {"flush_interval_s": 60.0, "fsync_interval_s": 0.0, "max_rows_per_chunk": 128}
    meta = {"run_id": "two-inputs", "mode": "realtime", "period_ns": PERIOD_NS}
    with Recorder(folder / "plant.rec", plant_columns(NAMES, UNITS, INPUTS),
                  {**meta, "process": "plant", "plant": DESCRIPTION}, **lazy) as plant_rec, \
            Recorder(folder / "controller.rec", controller_columns(NAMES, UNITS, INPUTS),
                     {**meta, "process": "controller", "t0_ns": T0_NS}, **lazy) as ctrl_rec:
        for i in range(steps):
            t_ns = T0_NS + i * PERIOD_NS
            held = u[i - 1] if i else np.zeros(2)
            plant_rec.record((i, t_ns, i * 1e-3, *states[i].tolist(), *held.tolist(), 0, 1000,
                              i - 1, i - 1, 250_000 if i else -1))
            ctrl_rec.record((i, i, t_ns, t_ns + 50_000, t_ns + 90_000, 20_000, 1000,
                             *states[i].tolist(), *u[i].tolist(), float("nan"),
                             float("nan")))
    return folder

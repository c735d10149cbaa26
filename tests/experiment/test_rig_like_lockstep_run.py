"""A lockstep experiment with everything a rig has between the law and the plant (sensors:
an encoder's quantisation, noise, a delay; actuators: an input delay and a lag) and a mass
put on the cart mid-run is the same bit for bit run after run: two `hil run`s (real
processes over loopback) of one config, the cart-pole under lqr.

Each recording is also checked against the definitions, computed here: the controller's
`sensed_x` is the true x quantised and delayed, the plant's actuator output follows the lag
of the control `delay_steps` rows before, `param_cart_mass_kg` steps at its time."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from runs_together import run_together

from hil.recording.recorder import read_recording

ROOT = Path(__file__).resolve().parents[2]
RATE_HZ, DT = 500, 1 / 500
DELAY, LAG_S, RES_X, SENSOR_DELAY = 3, 0.02, 0.001, 1
MASS_AT, MASS_ADDED = 1.5, 0.5

CONFIG = f'''
run: {{mode: lockstep, rate_hz: {RATE_HZ}, duration_s: 3}}
plant: {{model: cartpole, initial_state: [0.0, 0.05, 0.0, 0.0],
         lockstep_watchdog_timeout_ms: 20000}}
controller: {{name: lqr, connect_timeout_s: 60}}
record: {{history_db: null, html: false}}
experiment:
  reference: [{{state: x, signal: step, at_s: 0.2, value: 0.3}}]
  disturbances: [{{parameter: cart_mass_kg, at_s: {MASS_AT}, value: {MASS_ADDED}}}]
  sensors: {{resolution: {{x: {RES_X}}}, noise_std: {{x_dot: 0.002}},
            delay_samples: {SENSOR_DELAY}, seed: 3}}
  actuator: {{delay_steps: {DELAY}, lag_s: {{force: {LAG_S}}}}}
'''

WALL_CLOCK = {"t_ns", "state_t_ns", "rx_ns", "send_ns", "compute_ns", "lateness_ns",
              "round_trip_ns"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from conftest import free_endpoint

    lab = tmp_path_factory.mktemp("lab")
    (lab / "rig.yaml").write_text(CONFIG)
    # Side by side: lockstep (connect_timeout_s 60 in the config while both start).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for done in run_together([[sys.executable, "-m", "hil.cli", "run", "--config", "rig.yaml",
                               "--endpoint", free_endpoint(), "--out", name]
                              for name in ("a", "b")], lab, env):
        assert done.returncode == 0, done.stdout + done.stderr
    return lab / "a", lab / "b"


@pytest.mark.slow
def test_two_lockstep_runs_are_the_same_bit_for_bit(runs: tuple[Path, Path]) -> None:
    for name in ("plant.rec", "controller.rec"):
        a, b = read_recording(runs[0] / name), read_recording(runs[1] / name)
        assert list(a) == list(b)
        for column in a:
            if column not in WALL_CLOCK:
                assert np.array_equal(a[column], b[column], equal_nan=True), (name, column)
    ra, rb = (json.loads((r / "report.json").read_text()) for r in runs)
    assert ra["verdict"] == rb["verdict"] == "PASS"
    assert ra["experiment"]["metrics"] == rb["experiment"]["metrics"]


@pytest.mark.slow
def test_the_controller_records_what_the_law_saw_beside_the_true_state(
        runs: tuple[Path, Path]) -> None:
    rec = read_recording(runs[0] / "controller.rec")
    x, seen = rec["x"], rec["sensed_x"]
    assert rec.units["sensed_x"] == "m"
    quantised = RES_X * np.floor(x / RES_X + 0.5)
    np.testing.assert_array_equal(seen[SENSOR_DELAY:], quantised[:-SENSOR_DELAY])
    assert np.abs(seen - x).max() > RES_X / 4  # the quantisation shows
    assert not np.array_equal(rec["sensed_x_dot"], rec["x_dot"])  # the noise too


@pytest.mark.slow
def test_the_plant_lags_the_control_it_got_delay_steps_before(
        runs: tuple[Path, Path]) -> None:
    rec = read_recording(runs[0] / "plant.rec")
    u, a = rec["force"], rec["actuator_force"]
    alpha = 1 - math.exp(-DT / LAG_S)
    k = np.arange(DELAY + 1, len(u) - 2)  # the last rows: the safe output the run ends on
    # Row k + 1's control was held over the step from row k; the actuator got row k + 1 -
    # DELAY's: a[k + 1] = a[k] + (u[k + 1 - DELAY] - a[k]) alpha
    np.testing.assert_allclose(a[k + 1], a[k] + (u[k + 1 - DELAY] - a[k]) * alpha,
                               rtol=0, atol=1e-12)
    assert np.all(a[: DELAY + 1] == 0.0)  # nothing reached the plant for DELAY steps
    assert np.abs(u[1:]).max() > 1.0


@pytest.mark.slow
def test_the_mass_change_is_recorded_as_a_column_and_an_event(runs: tuple[Path, Path]) -> None:
    rec = read_recording(runs[0] / "plant.rec")
    t, mass = rec["sim_time_s"], rec["param_cart_mass_kg"]
    np.testing.assert_array_equal(mass, np.where(t >= MASS_AT, 1.0 + MASS_ADDED, 1.0))
    report = json.loads((runs[0] / "report.json").read_text())
    plant = json.loads((runs[0] / "plant.json").read_text())
    assert plant["parameter_changes"] == [{"time_s": MASS_AT, "cart_mass_kg": 1.0 + MASS_ADDED}]
    assert report["experiment"]["disturbances"] == [
        {"at_s": MASS_AT, "parameter": "cart_mass_kg", "signal": "step", "value": MASS_ADDED,
         "mode": "add"}]

"""A lab's step-response exercise end to end: a plant and a three-argument law of the lab's
own, written here beside their YAML, run by `hil run` (real processes over loopback) in
lockstep with a step reference, a force pulse and sensors.

Checked against independent references: the step metrics of report.json against
python-control's step_info on the exported CSV; each recorded control against the law
evaluated on the sensors' output derived here from the true recorded state (quantised, noisy
from the seeded stream, one control late) and the reference; the plant's velocity across each
step against the exact solution of its linear ODE with the pulse added; and two runs of the
same config, one over ZeroMQ and one over shared memory, give the same recordings, bit for
bit.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import control
import numpy as np
import pytest
from runs_together import run_together

from hil.recording.recorder import read_recording

ROOT = Path(__file__).resolve().parents[2]
RATE_HZ, DT = 500, 1 / 500
STEP_AT, STEP_TO, PULSE_AT, PULSE_S, PULSE_N = 0.5, 0.5, 4.0, 0.1, 2.0
KP, KD, MASS, DAMPING = 9.0, 2.5, 1.0, 0.5  # wn 3 rad/s, zeta 0.5
RES_X, STD_V, SEED = 0.001, 0.001, 5

PLANT = f'''
import numpy as np


class Cart:
    """A mass on a rail with viscous friction: x'' = (u - b x') / m."""
    state_names = ("x", "x_dot")
    state_units = ("m", "m/s")
    input_names = ("force",)
    input_units = ("N",)
    input_limits = (50.0,)
    regulated_states = ("x",)

    def derivatives(self, state, u):
        return np.array([state[1], (u[0] - {DAMPING} * state[1]) / {MASS}])
'''

LAW = f'''
class Track:
    """PD on the error to the run's target."""
    gain_names = ("kp", "kd")
    default_gains = ({KP}, {KD})

    def __init__(self, gains, **context):
        self.kp, self.kd = gains
        self.limit = context["max_force_n"]

    def compute(self, state, t, target):
        u = self.kp * (target[0] - state[0]) - self.kd * (state[1] - target[1])
        return min(max(u, -self.limit), self.limit)
'''

CONFIG = f'''
run: {{mode: lockstep, rate_hz: {RATE_HZ}, duration_s: 5}}
plant: {{model: "cart:Cart", initial_state: [0.0, 0.0], lockstep_watchdog_timeout_ms: 20000}}
controller: {{name: "track:Track", connect_timeout_s: 60}}
record: {{history_db: null, html: false}}
experiment:
  reference: [{{state: x, signal: step, at_s: {STEP_AT}, value: {STEP_TO}}}]
  disturbances:
    - {{input: force, signal: pulse, at_s: {PULSE_AT}, duration_s: {PULSE_S}, value: {PULSE_N}}}
  sensors: {{resolution: {{x: {RES_X}}}, noise_std: {{x_dot: {STD_V}}}, delay_samples: 1,
            seed: {SEED}}}
gates:
  metrics: {{x.overshoot_pct: 30, x.steady_state_error: 0.05}}
'''


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def hil(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=240, env=ENV)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs of the same experiment, over ZeroMQ then over shared memory: their run
    folders."""
    from conftest import free_endpoint

    lab = tmp_path_factory.mktemp("lab")
    (lab / "cart.py").write_text(PLANT)
    (lab / "track.py").write_text(LAW)
    (lab / "step.yaml").write_text(CONFIG)
    runs = {name: [sys.executable, "-m", "hil.cli", "run", "--config", "step.yaml",
                   "--endpoint", free_endpoint(), "--out", name, "--set",
                   f"run.transport={transport}"] for name, transport in (("a", "zmq"),
                                                                         ("b", "shm"))}
    # Side by side: lockstep (connect_timeout_s 60 in the config while both start).
    for done in run_together(list(runs.values()), lab, ENV):
        assert done.returncode == 0, done.stdout + done.stderr
    return lab / "a", lab / "b"


@pytest.mark.slow
def test_the_step_is_tracked_and_its_metrics_match_python_control_on_the_csv(
        runs: tuple[Path, Path]) -> None:
    out = runs[0]
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "PASS"
    assert report["experiment"]["final_target"] == [STEP_TO, 0.0]
    assert {"metrics.x.overshoot_pct", "metrics.x.steady_state_error"} <= {
        g["name"] for g in report["gates"] if g["passed"] and g["critical"]}
    assert hil(out.parent, "export", out.name, "--format", "csv").returncode == 0
    table = np.genfromtxt(out / "plant.csv", delimiter=",", names=True)
    t, x = table["sim_time_s_s"], table["x_m"]
    window = (t >= STEP_AT) & (t < PULSE_AT)  # the step's window ends at the pulse
    want = control.step_info(x[window] - x[window][0], t[window] - STEP_AT)
    got = report["experiment"]["states"]["x"]
    for ours, theirs in (("rise_time_s", "RiseTime"), ("settling_time_s", "SettlingTime"),
                         ("peak_time_s", "PeakTime")):
        assert abs(got[ours] - want[theirs]) <= max(0.02 * want[theirs], DT), ours
    assert got["overshoot_pct"] == pytest.approx(want["Overshoot"], rel=0.02, abs=0.05)
    assert got["peak"] == pytest.approx(want["Peak"], rel=0.02)
    assert 10.0 < got["overshoot_pct"] < 30.0  # zeta 0.5: 16 % for the continuous loop
    error = np.where(t >= STEP_AT, STEP_TO, 0.0) - x
    after = t >= STEP_AT
    iae = np.sum(np.abs(error[after][1:] + error[after][:-1]) / 2 * np.diff(t[after]))
    assert got["iae"] == pytest.approx(iae, rel=0.02)


@pytest.mark.slow
def test_each_control_is_the_law_on_what_the_sensors_gave_it(runs: tuple[Path, Path]) -> None:
    rec = read_recording(runs[0] / "controller.rec")
    seq, x, v, u = rec["state_seq"], rec["x"], rec["x_dot"], rec["force"]
    assert np.array_equal(seq, np.arange(len(seq)))  # lockstep: every state answered
    rng = np.random.Generator(np.random.PCG64(SEED))
    noise = np.array([rng.standard_normal(2) for _ in seq])
    seen_x = RES_X * np.floor(x / RES_X + 0.5)  # x has no noise, v is not quantised
    seen_v = v + STD_V * noise[:, 1]
    late = np.maximum(seq - 1, 0)  # one control late
    target = np.where(seq * DT >= STEP_AT, STEP_TO, 0.0)
    want = np.clip(KP * (target - seen_x[late]) - KD * seen_v[late], -50.0, 50.0)
    np.testing.assert_allclose(u, want, rtol=0, atol=1e-12)
    assert np.abs(u - KP * (target - x) + KD * v).max() > 1e-3  # the sensors changed it
    # hil replay (its own process: a law it loads stays in the registry of the one it runs in)
    replayed = hil(runs[0].parent, "replay", runs[0].name, "--tolerance", "0")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replayed {len(seq)} controls" in replayed.stdout


@pytest.mark.slow
def test_the_pulse_is_recorded_and_added_to_the_force_the_plant_integrates(
        runs: tuple[Path, Path]) -> None:
    out = runs[0]
    rec = read_recording(out / "plant.rec")
    t, d = rec["sim_time_s"], rec["disturbance_force"]
    on = (t >= PULSE_AT) & (t - PULSE_AT < PULSE_S - 1e-9)
    assert np.all(d[on] == PULSE_N) and np.all(d[~on] == 0.0) and on.sum() == 50
    # Over each step the plant integrates v' = (u + d - b v) / m, u the control it applied
    # (in the next row) and d the disturbance at the step's start: its exact solution.
    decay = math.exp(-DAMPING / MASS * DT)
    v, u = rec["x_dot"], rec["force"]
    k = np.arange(1, len(t) - 2)  # the last row: the safe output the run ends on
    exact = v[k] * decay + (u[k + 1] + d[k]) / DAMPING * (1 - decay)
    np.testing.assert_allclose(v[k + 1], exact, rtol=0, atol=1e-9)
    without = v[k] * decay + u[k + 1] / DAMPING * (1 - decay)
    assert np.abs(v[k + 1] - without)[on[k]].min() > 0.9 * PULSE_N * DT
    report = json.loads((out / "report.json").read_text())
    assert report["experiment"]["disturbances"] == [
        {"at_s": PULSE_AT, "input": "force", "signal": "pulse", "value": PULSE_N,
         "duration_s": PULSE_S}]


@pytest.mark.slow
def test_a_lockstep_run_with_sensors_is_the_same_over_zmq_and_shm(
        runs: tuple[Path, Path]) -> None:
    for name in ("plant.rec", "controller.rec"):
        a, b = read_recording(runs[0] / name), read_recording(runs[1] / name)
        varying = {"t_ns", "state_t_ns", "rx_ns", "send_ns", "compute_ns", "lateness_ns",
                   "round_trip_ns", "sigma", "mass_condition"}  # wall-clock times, not numbers
        for column in a:
            if column not in varying:
                assert np.array_equal(a[column], b[column], equal_nan=True), (name, column)
    ra, rb = (json.loads((r / "report.json").read_text()) for r in runs)
    assert ra["experiment"]["metrics"] == rb["experiment"]["metrics"]
    assert (ra["config"]["run"]["transport"], rb["config"]["run"]["transport"]) == ("zmq", "shm")

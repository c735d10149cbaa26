"""Replay: recorded states through a fresh law reproduce the recorded controls exactly."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_HTML, free_endpoint

from controller_client.main import build_plant_model, law_from_config
from controller_client.replay import main, replay
from hil.cli import main as hil_main
from hil.config import dump_config, load_config
from hil.dynamics.inputs import Inputs
from hil.recording.recorder import Recorder, controller_columns, read_recording

NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]
UNITS = ["m", "rad", "rad", "m/s", "rad/s", "rad/s"]
T0_NS = 7_000_000_000


DIP_INPUT = Inputs.single("force", "N", 150.0)


def record_run(run: Path, controller: str = "classical_smc", steps: int = 300,
               changes: dict[int, list[float]] | None = None, mode: str = "realtime",
               old: bool = False) -> Path:
    """A run folder whose controller.rec holds what `controller` computed, as the loop does;
    `changes` {row: gains}: set before that row's control, and listed in controller.json as
    the loop lists them (the time: the state's in lockstep, between two sends in realtime).
    `old`: the recording as written before several inputs (one `force_n` column)."""
    run.mkdir(parents=True, exist_ok=True)
    config = load_config(None, {"controller.name": controller})
    (run / "config.yaml").write_text(dump_config(config))
    law = law_from_config(config)
    for _ in range(3):  # warm-up calls, as hil-controller makes before the handshake
        law.compute(np.array(config.plant.initial_state), 0.0)
    law.reset()
    t = np.arange(steps) * 1e-3
    decay = np.exp(-3 * t)
    states = np.stack([0.2 * (1 - decay), 0.1 * decay * np.cos(8 * t),
                       -0.05 * decay * np.cos(8 * t), 0.6 * decay, -0.8 * decay * np.sin(8 * t),
                       0.4 * decay * np.sin(8 * t)], axis=1)
    events = []
    columns = controller_columns(NAMES, UNITS) if old else \
        controller_columns(NAMES, UNITS, DIP_INPUT)
    with Recorder(run / "controller.rec", columns,
                  {"t0_ns": T0_NS, "mode": mode, "period_ns": 1_000_000},
                  flush_interval_s=60.0, fsync_interval_s=0.0, max_rows_per_chunk=100) as rec:
        state = np.zeros(6)
        for i in range(steps):
            state[:] = states[i]
            t_ns = T0_NS + i * 1_000_000
            if i in (changes or {}):
                old = list(law.gains)
                law.set_gains(changes[i])
                time_s = (i * 1_000_000 * 1e-9 if mode == "lockstep"
                          else (t_ns - T0_NS + 100_000) * 1e-9)
                events += [{"time": time_s, "names": [], "old": old, "new": list(law.gains),
                            "applied": True},
                           {"time": time_s, "names": [], "old": old, "new": None,
                            "applied": False}]
            force = law.compute(state, (t_ns - T0_NS) * 1e-9)
            rec.record((i + 1, i, t_ns, t_ns + 90_000, t_ns + 300_000, 5000, 0,
                        *states[i].tolist(), force, getattr(law, "sigma", math.nan),
                        getattr(law, "mass_condition", math.nan)))
    if changes:
        (run / "controller.json").write_text(json.dumps({"gain_changes": events}))
    return run


@pytest.mark.parametrize("controller, old", [("classical_smc", False), ("lqr", False),
                                             ("lqr", True)])
def test_a_recorded_run_is_reproduced_exactly(tmp_path: Path, controller: str,
                                              old: bool) -> None:
    result = replay(record_run(tmp_path / "r", controller, old=old))
    assert [(d.name, d.unit) for d in result.inputs] == [("force", "N")]
    assert result.controls == 300 and result.controller == controller
    assert result.max_diff == 0.0 and result.reproduced
    assert result.recording_complete and result.recording_problem is None


@pytest.mark.parametrize("mode", ["realtime", "lockstep"])
def test_a_run_whose_gains_changed_live_is_reproduced_with_its_changes(
        tmp_path: Path, mode: str, capsys: pytest.CaptureFixture) -> None:
    changes = {120: [20.0, 100.0, 100.0, 1.0, 1.0, 1.0, 0.02],
               121: [20.0, 150.0, 100.0, 1.0, 1.0, 1.0, 0.02]}
    run = record_run(tmp_path / "r", "lqr", changes=changes, mode=mode)
    result = replay(run)
    assert result.gain_changes == 2 and result.max_diff == 0.0 and result.reproduced
    assert main([str(run)]) == 0
    assert "with the run's 2 gain changes (controller.json)" in capsys.readouterr().out
    (run / "controller.json").unlink()  # without them the replay differs from control 121 on
    unchanged = replay(run)
    assert not unchanged.reproduced and unchanged.worst_control_seq >= 121


@pytest.mark.timeout(300)
def test_hil_replay_reproduces_a_real_run_whose_gains_changed_live(tmp_path: Path) -> None:
    """Real processes: a lockstep lqr run, `hil gains` twice while it runs, Ctrl-C, then
    `hil replay` of its folder."""
    endpoint = free_endpoint()
    hil = [sys.executable, "-m", "hil.cli"]
    proc = subprocess.Popen([*hil, "run", *NO_HTML, "--controller", "lqr", "--mode",
                             "lockstep", "--duration", "3600", "--endpoint", endpoint, "--out",
                             str(tmp_path / "out"), "--set", "controller.connect_timeout_s=60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 120
        asked = [*hil, "gains", "--endpoint", endpoint]
        while subprocess.run([*asked, "--timeout", "0.5"], capture_output=True).returncode:
            assert proc.poll() is None and time.monotonic() < give_up, "no run to ask"
        for change in ("q_x=20", "r=0.02"):
            done = subprocess.run([*asked, change], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    replayed = subprocess.run([*hil, "replay", str(tmp_path / "out")], capture_output=True,
                              text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "with the run's 2 gain changes (controller.json)" in replayed.stdout
    assert "reproduced within 1e-09 N: yes" in replayed.stdout


def test_unreadable_gain_changes_are_named(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    run = record_run(tmp_path / "r", "lqr", changes={5: [20.0, 100.0, 100.0, 1, 1, 1, 0.02]})
    (run / "controller.json").write_text('{"gain_changes": [{"applied": true}]}')
    assert main([str(run)]) == 2
    assert f"{run / 'controller.json'}: its gain_changes cannot be read" in \
        capsys.readouterr().err


def shift_force(run: Path, row: int, delta_n: float) -> None:
    """Rewrite controller.rec with one recorded force changed."""
    rec = read_recording(run / "controller.rec")
    rec[rec.inputs[0]][row] += delta_n
    with Recorder(run / "controller.rec", rec.columns, rec.meta, flush_interval_s=60.0,
                  fsync_interval_s=0.0) as out:
        for i in range(rec.rows):
            out.record(tuple(rec[c.name][i] for c in rec.columns))


def test_a_changed_control_is_found_and_fails_the_replay(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    run = record_run(tmp_path / "r")
    shift_force(run, 149, 1e-3)  # control 150
    assert main([str(run)]) == 1
    text = capsys.readouterr().out
    assert "largest |force difference|: 0.001 N at control 150" in text
    assert "reproduced within 1e-09 N: NO" in text
    assert main([str(run), "--tolerance", "0.01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["worst_control_seq"] == 150 and result["reproduced"]


def test_a_killed_controllers_recording_is_replayed_as_far_as_it_goes(tmp_path: Path) -> None:
    run = record_run(tmp_path / "r")
    rec = run / "controller.rec"
    rec.write_bytes(rec.read_bytes()[:-100])
    result = replay(run)
    assert result.controls == 200 and result.reproduced
    assert not result.recording_complete and "cut short" in result.recording_problem


def test_what_replay_needs_is_named_when_missing(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    assert main([str(run)]) == 2
    assert "config.yaml" in capsys.readouterr().err
    (run / "config.yaml").write_text(dump_config(load_config(None)))
    assert main([str(run)]) == 2
    assert "controller.rec" in capsys.readouterr().err


def test_a_run_of_a_controller_program_is_not_replayed_through_the_named_law(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = record_run(tmp_path / "r", steps=50)
    config = load_config(run / "config.yaml", {"controller.command": "./clients/c/build/lqr"})
    (run / "config.yaml").write_text(dump_config(config))
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "controller.command './clients/c/build/lqr'" in err
    assert "controller.name 'classical_smc' did not run" in err and "hil export" in err


def test_hil_replay_runs_the_controller_packages_replay(tmp_path: Path) -> None:
    run = record_run(tmp_path / "r", steps=50)
    assert hil_main(["replay", str(run)]) == 0
    assert hil_main(["replay", str(tmp_path / "nowhere")]) == 2


HELICOPTER = Path(__file__).resolve().parents[2] / "configs" / "helicopter.yaml"


def record_two_input_run(run: Path, steps: int = 200) -> Path:
    """A run folder of the 2-DOF helicopter (two voltages) whose controller.rec holds what
    its MIMO lqr computed, one column per input, as the loop records them."""
    run.mkdir(parents=True, exist_ok=True)
    config = load_config(HELICOPTER)
    (run / "config.yaml").write_text(dump_config(config))
    law = law_from_config(config)
    desc = build_plant_model(config).describe()
    inputs = Inputs.from_description(desc)
    law.reset()
    t = np.arange(steps) * 1e-3
    decay = np.exp(-2 * t)
    states = np.stack([0.2 * decay, -0.3 * decay, -0.4 * decay, 0.6 * decay], axis=1)
    with Recorder(run / "controller.rec", controller_columns(desc["state_names"],
                                                             desc["state_units"], inputs),
                  {"t0_ns": T0_NS, "mode": "realtime", "period_ns": 1_000_000},
                  flush_interval_s=60.0, fsync_interval_s=0.0) as rec:
        for i in range(steps):
            t_ns = T0_NS + i * 1_000_000
            u = law.compute(states[i].copy(), (t_ns - T0_NS) * 1e-9)
            rec.record((i + 1, i, t_ns, t_ns + 90_000, t_ns + 300_000, 5000, 0,
                        *states[i].tolist(), *np.asarray(u, dtype=float).tolist(),
                        math.nan, math.nan))
    return run


def shift_input(run: Path, column: str, row: int, delta: float) -> None:
    """Rewrite controller.rec with one recorded input of one control changed."""
    rec = read_recording(run / "controller.rec")
    rec[column][row] += delta
    with Recorder(run / "controller.rec", rec.columns, rec.meta, flush_interval_s=60.0,
                  fsync_interval_s=0.0) as out:
        for i in range(rec.rows):
            out.record(tuple(rec[c.name][i] for c in rec.columns))


def test_a_two_input_run_is_reproduced_exactly_input_by_input(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture
                                                              ) -> None:
    run = record_two_input_run(tmp_path / "heli")
    result = replay(run)
    assert [(d.name, d.unit, d.max_diff) for d in result.inputs] == [
        ("pitch_voltage", "V", 0.0), ("yaw_voltage", "V", 0.0)]
    assert result.controls == 200 and result.reproduced
    assert main([str(run)]) == 0
    text = capsys.readouterr().out
    assert "largest |pitch_voltage difference|: 0 V" in text
    assert "largest |yaw_voltage difference|: 0 V" in text
    assert "reproduced within 1e-09 V: yes" in text


def test_a_changed_input_of_a_two_input_run_is_named_with_its_control(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = record_two_input_run(tmp_path / "heli")
    shift_input(run, "yaw_voltage", 99, -0.25)  # control 100
    assert main([str(run)]) == 1
    text = capsys.readouterr().out
    assert "largest |pitch_voltage difference|: 0 V" in text
    assert "largest |yaw_voltage difference|: 0.25 V at control 100" in text
    assert "reproduced within 1e-09 V: NO" in text
    assert main([str(run), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["worst_control_seq"] == 100 and result["max_diff"] == pytest.approx(0.25)
    assert [d["name"] for d in result["inputs"]] == ["pitch_voltage", "yaw_voltage"]


TWO_OUTPUTS = """\
class TwoOutputs:
    def __init__(self, gains, **context):
        pass

    def compute(self, state, t):
        return (0.5 * state[0], -0.5 * state[1])
"""


def test_a_law_whose_output_does_not_fit_the_recorded_inputs_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = record_run(tmp_path / "r", "lqr", steps=20)  # one input (force) recorded
    assert read_recording(run / "controller.rec").inputs == ("force",)
    (run / "two_outputs.py").write_text(TWO_OUTPUTS)
    config = load_config(None, {"controller.name": "two_outputs:TwoOutputs",
                                "source_dir": str(run)})
    (run / "config.yaml").write_text(dump_config(config))
    assert main([str(run)]) == 1
    err = capsys.readouterr().err
    assert "control law two_outputs:TwoOutputs returned 2 values" in err
    assert "for 1 input" in err


def test_a_run_folder_whose_config_is_another_plants_is_refused_naming_both(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = record_run(tmp_path / "r", "lqr", steps=20)  # the DIP's six states, one input
    (run / "config.yaml").write_text(dump_config(load_config(HELICOPTER)))
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "records the states ['x', 'theta1', 'theta2'" in err and "and 1 input(s)" in err
    assert "plant has the states ['pitch', 'yaw', 'pitch_rate', 'yaw_rate'] and 2 input(s)" \
        in err

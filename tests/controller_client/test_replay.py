"""Replay: recorded states through a fresh law reproduce the recorded controls exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from controller_client.main import law_from_config
from controller_client.replay import main, replay
from hil.cli import main as hil_main
from hil.config import dump_config, load_config
from hil.recording.recorder import Recorder, controller_columns, read_recording

NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]
UNITS = ["m", "rad", "rad", "m/s", "rad/s", "rad/s"]
T0_NS = 7_000_000_000


def record_run(run: Path, controller: str = "classical_smc", steps: int = 300) -> Path:
    """A run folder whose controller.rec holds what `controller` computed, as the loop does."""
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
    with Recorder(run / "controller.rec", controller_columns(NAMES, UNITS),
                  {"t0_ns": T0_NS}, flush_interval_s=60.0, fsync_interval_s=0.0,
                  max_rows_per_chunk=100) as rec:
        state = np.zeros(6)
        for i in range(steps):
            state[:] = states[i]
            t_ns = T0_NS + i * 1_000_000
            force = law.compute(state, (t_ns - T0_NS) * 1e-9)
            rec.record((i + 1, i, t_ns, t_ns + 90_000, t_ns + 300_000, 5000, 0,
                        *states[i].tolist(), force, getattr(law, "sigma", math.nan),
                        getattr(law, "mass_condition", math.nan)))
    return run


@pytest.mark.parametrize("controller", ["classical_smc", "lqr"])
def test_a_recorded_run_is_reproduced_exactly(tmp_path: Path, controller: str) -> None:
    result = replay(record_run(tmp_path / "r", controller))
    assert result.controls == 300 and result.controller == controller
    assert result.max_force_diff_n == 0.0 and result.reproduced
    assert result.recording_complete and result.recording_problem is None


def shift_force(run: Path, row: int, delta_n: float) -> None:
    """Rewrite controller.rec with one recorded force changed."""
    rec = read_recording(run / "controller.rec")
    rec["force_n"][row] += delta_n
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


def test_hil_replay_runs_the_controller_packages_replay(tmp_path: Path) -> None:
    run = record_run(tmp_path / "r", steps=50)
    assert hil_main(["replay", str(run)]) == 0
    assert hil_main(["replay", str(tmp_path / "nowhere")]) == 2

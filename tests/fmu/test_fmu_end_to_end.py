"""FMU plants through `hil run`, real processes: the generic LQR balances the model exchange
cart-pole FMU to PASS in lockstep and at 1 kHz in real time (both transports), and its
two-input variant (a force and a torque) in lockstep; a co-simulation FMU whose doStep fails
mid-run puts the plant in its safe state, the report naming the call and the time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import NO_HTML, assert_passed_but_timing, free_endpoint
from fmubuild import fmus_fixture  # noqa: F401  (the session's FMUs)
from plantconfig import write_config
from runs_together import run_together

from hil.recording.recorder import read_recording

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

ZERO_LAW = '''
class Zero:
    """No force: the cart-pole at rest stays there (a law that needs no plant model)."""

    def __init__(self, gains=None, **context):
        pass

    def compute(self, state, t):
        return 0.0
'''


def _argv(config: Path, overrides: tuple[str, ...]) -> list[str]:
    sets = [item for o in overrides for item in ("--set", o)]
    return [sys.executable, "-m", "hil.cli", "run", "--config", str(config), "--out",
            str(config.parent / "out"), "--endpoint", free_endpoint(), *NO_HTML, *sets]


def _report(config: Path) -> dict:
    path = config.parent / "out" / "report.json"
    return json.loads(path.read_text()) if path.exists() else {}


def hil_run(config: Path, *overrides: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    done = subprocess.run(_argv(config, overrides), cwd=config.parent, env=ENV,
                          capture_output=True, text=True, timeout=180)
    return done, _report(config)


def lqr_overrides(mode: str, transport: str) -> tuple[str, ...]:
    return (f"run.mode={mode}", f"run.transport={transport}", "run.rate_hz=1000",
            "plant.watchdog_timeout_ms=250")


Run = tuple[Path, subprocess.CompletedProcess[str], dict]


@pytest.fixture(scope="module")
def lockstep_runs(tmp_path_factory: pytest.TempPathFactory, fmus: SimpleNamespace
                  ) -> dict[str, Run]:
    """The module's lockstep runs, started together (lockstep does not care how the runs
    share the machine; the realtime run runs alone): lqr on the model exchange FMU over
    ZeroMQ and on its two-input variant over shared memory, and the zero law on the
    co-simulation FMU that fails at 0.5 s. {name: (the run's folder, hil run's result,
    report.json)}."""
    root = tmp_path_factory.mktemp("fmu-runs")
    (root / "failing").mkdir()
    (root / "failing" / "zero.py").write_text(ZERO_LAW)
    # Three runs start at once: the controllers wait for their plants as long as needed.
    patient = ("controller.connect_timeout_s=60",)
    configs = {
        "me": (write_config(root / "me", fmus.me),
               lqr_overrides("lockstep", "zmq") + patient),
        "two_inputs": (write_config(root / "two_inputs", fmus.two_inputs),
                       lqr_overrides("lockstep", "shm") + patient),
        "failing": (write_config(root / "failing", fmus.cs, controller="zero:Zero",
                                 initial_state=[0.0, 0.0, 0.0, 0.0], params={"fail_at_s": 0.5},
                                 fmu_outputs=["x", "theta", "x_dot", "theta_dot"]),
                    ("run.mode=lockstep", *patient))}
    done = run_together([_argv(config, overrides) for config, overrides in configs.values()],
                        [config.parent for config, _ in configs.values()], ENV)
    return {name: (config.parent, result, _report(config))
            for (name, (config, _)), result in zip(configs.items(), done, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mode", "transport"), [
    ("me", "lockstep", "zmq"), ("me", "realtime", "shm"), ("two_inputs", "lockstep", "shm")])
def test_lqr_balances_the_model_exchange_fmu(tmp_path: Path, fmus: SimpleNamespace,
                                             request: pytest.FixtureRequest,
                                             name: str, mode: str, transport: str) -> None:
    if mode == "lockstep":  # one of the module's lockstep runs
        folder, done, report = request.getfixturevalue("lockstep_runs")[name]
        assert report, done.stdout + done.stderr
        assert report["verdict"] == "PASS", done.stdout + done.stderr
        assert report["config"]["run"]["transport"] == transport
    else:  # this shared machine may take a realtime run's deadlines; nothing else may fail
        folder = tmp_path
        done, report = hil_run(write_config(folder, getattr(fmus, name)),
                               *lqr_overrides(mode, transport))
        assert report, done.stdout + done.stderr
        assert_passed_but_timing(report)
    assert report["mode"] == mode
    assert report["plant"]["name"] == "fmu:cartpole"
    plant = read_recording(folder / "out" / "plant.rec")
    assert abs(plant["theta"][0] - 0.1) < 1e-9 and abs(plant["theta"][-1]) < 0.02
    inputs = ["F", "tau"] if name == "two_inputs" else ["F"]
    assert [plant.units[n] for n in inputs] == ["N", "N.m"][:len(inputs)]
    for n in inputs:  # the law used each input to catch the pole
        assert np.abs(plant[n]).max() > 0.1, n


@pytest.mark.slow
def test_a_failing_do_step_puts_the_plant_safe_and_the_report_names_it(
        lockstep_runs: dict[str, Run]) -> None:
    folder, done, report = lockstep_runs["failing"]
    assert done.returncode != 0
    assert report.get("verdict") == "FAIL", done.stdout + done.stderr
    reason = report["plant_end_reason"]
    assert "fmi2DoStep returned fmi2Error at t = 0.5 s" in reason, reason
    assert "its log: [Error] fmi2DoStep: the cart left its rails at t = 0.5 s" in reason
    assert report["safe_state"] and report["safe_reason"] == reason
    # The controller is told at once (the final state and bye), not left to time out.
    assert report["controller_end_reason"] == f"plant ended the run: {reason}", report
    completed = next(g for g in report["gates"] if g["name"] == "run_completed")
    assert not completed["passed"] and completed["value"] == reason
    # Recorded up to the failing step: 0.5 s at rest, then nothing more.
    plant = read_recording(folder / "out" / "plant.rec")
    assert plant["sim_time_s"][-1] == pytest.approx(0.499, abs=1e-9)
    assert np.abs(plant["theta"]).max() == 0.0

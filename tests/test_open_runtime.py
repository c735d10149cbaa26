"""The open runtime end to end: a lab's own law and plant in a folder beside their YAML (never
installed), the rotary model, gains changed on a running loop, a law that raises.

Real `hil run` processes over loopback ZeroMQ; the folders are written by `hil new`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HIL = [sys.executable, "-m", "hil.cli"]


def hil(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*HIL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run(cwd: Path, config: str, endpoint: str, *extra: str) -> tuple[
        subprocess.CompletedProcess[str], dict]:
    done = hil(cwd, "run", "--config", config, "--endpoint", endpoint, "--out", "out", *extra)
    report = json.loads((cwd / "out" / "report.json").read_text()) if (
        cwd / "out" / "report.json").exists() else {}
    return done, report


def no_history(path: Path) -> None:
    path.write_text(path.read_text() + "record: {history_db: null, html: false}\n")


def test_own_law_beside_its_yaml_balances_the_default_plant_in_lockstep_and_realtime(
        tmp_path: Path, endpoint: str) -> None:
    assert hil(tmp_path, "new", "controller", "mylaw").returncode == 0
    no_history(tmp_path / "mylaw.yaml")
    for mode in ("lockstep", "realtime"):
        done, report = run(tmp_path, "mylaw.yaml", endpoint, "--mode", mode, "--duration", "3")
        assert done.returncode == 0, done.stdout + done.stderr
        assert report["verdict"] == "PASS" and report["mode"] == mode
        assert report["law"]["name"] == "mylaw:Mylaw"
        assert report["law"]["gains"]["k_x"] == pytest.approx(31.62)


def test_own_plant_beside_its_yaml_is_balanced_by_lqr(tmp_path: Path, endpoint: str) -> None:
    assert hil(tmp_path, "new", "plant", "mycart").returncode == 0
    no_history(tmp_path / "mycart.yaml")
    done, report = run(tmp_path, "mycart.yaml", endpoint, "--mode", "lockstep",
                       "--duration", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["verdict"] == "PASS"
    assert report["plant"]["name"] == "mycart:Mycart"
    assert report["plant"]["state_names"] == ["x", "theta", "x_dot", "theta_dot"]
    assert report["law"]["gains"] == {"q_x": 10.0, "q_theta": 100.0, "q_x_dot": 1.0,
                                      "q_theta_dot": 1.0, "r": 0.5625}
    assert abs(report["final_state"][1]) < 0.02


def test_rotary_config_balances_the_qube_in_real_time(tmp_path: Path, endpoint: str) -> None:
    config = tmp_path / "rotary.yaml"
    config.write_text((ROOT / "configs" / "rotary.yaml").read_text())
    no_history(config)
    done, report = run(tmp_path, "rotary.yaml", endpoint, "--duration", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["verdict"] == "PASS"
    assert report["plant"]["input_name"] == "voltage" and report["plant"]["input_unit"] == "V"
    assert report["plant"]["upright_angles"] == ["pendulum"]
    assert report["plant"]["max_force_n"] == 10.0


def test_gains_change_on_a_running_loop_and_bad_gains_are_refused(
        tmp_path: Path, endpoint: str) -> None:
    assert hil(tmp_path, "new", "controller", "mylaw").returncode == 0
    no_history(tmp_path / "mylaw.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Lockstep, long enough for the requests below: the gains path is the same as in
    # realtime, without wall-clock deadlines that a loaded machine can miss.
    proc = subprocess.Popen([*HIL, "run", "--config", "mylaw.yaml", "--endpoint", endpoint,
                             "--out", "out", "--mode", "lockstep", "--duration", "60"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 60
        while True:  # until the controller has attached and answers through the plant
            shown = hil(tmp_path, "gains", "--endpoint", endpoint, "--timeout", "0.5")
            if shown.returncode == 0:
                break
            assert time.monotonic() < give_up and proc.poll() is None, shown.stderr
        assert shown.stdout.startswith("gains: k_x=31.62 k_theta1=-633.6")
        changed = hil(tmp_path, "gains", "--endpoint", endpoint, "k_x=35", "k_x_dot=50")
        assert changed.returncode == 0, changed.stderr
        assert "k_x=31.62" in changed.stdout and "-> k_x=35 " in changed.stdout
        wrong_count = hil(tmp_path, "gains", "--endpoint", endpoint, "1", "2")
        assert wrong_count.returncode == 1
        assert ("refused: mylaw:Mylaw takes 6 gains [k_x, k_theta1, k_theta2, k_x_dot, "
                "k_theta1_dot, k_theta2_dot], got 2; the gains stay k_x=35 "
                ) in wrong_count.stderr
        unknown = hil(tmp_path, "gains", "--endpoint", endpoint, "kx=1")
        assert unknown.returncode == 1 and "no gain named 'kx'" in unknown.stderr
        after = hil(tmp_path, "gains", "--endpoint", endpoint)
        assert "k_x=35 " in after.stdout and "k_x_dot=50" in after.stdout
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"] == "PASS"
    events = report["gain_changes"]
    assert [e["applied"] for e in events] == [True, False, False]
    first = events[0]
    assert first["old"][0] == pytest.approx(31.62) and first["new"][0] == 35.0
    assert first["new"][3] == 50.0 and "@" in first["who"] and 0 < first["time"] < 60
    assert report["gains"][0] == 35.0


def test_a_law_that_raises_ends_the_run_with_the_plant_safe(tmp_path: Path,
                                                           endpoint: str) -> None:
    (tmp_path / "broken.py").write_text(
        "class Broken:\n"
        "    def __init__(self, gains, **context):\n"
        "        self.n = 0\n"
        "    def compute(self, state, t):\n"
        "        self.n += 1\n"
        "        return 1.0 / (300 - self.n)\n")
    (tmp_path / "broken.yaml").write_text(
        'controller: {name: "broken:Broken"}\nrecord: {history_db: null, html: false}\n')
    done, report = run(tmp_path, "broken.yaml", endpoint, "--mode", "lockstep")
    assert done.returncode == 1
    assert "control law broken:Broken raised ZeroDivisionError" in done.stderr
    assert report["verdict"] == "FAIL"
    assert report["law_error"]["law"] == "broken:Broken"
    assert "return 1.0 / (300 - self.n)" in report["law_error"]["traceback"]
    assert report["safe_state"] is True and report["plant_end_reason"] == "controller left"
    log = (tmp_path / "out" / "controller.log.jsonl").read_text()
    assert "ZeroDivisionError" in log

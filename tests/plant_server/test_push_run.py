"""`hil push` on a real realtime run: `hil run` (both processes over loopback) balancing the
cart-pole, pushed once by the command line while it runs, and once beyond the force limit
(refused, naming the limits); the run still passes and plant.json lists the push."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NO_HTML, assert_passed_but_timing

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
run: {mode: realtime, rate_hz: 500, duration_s: 5}
plant: {model: cartpole, initial_state: [0.0, 0.02, 0.0, 0.0], watchdog_timeout_ms: 250}
controller: {name: lqr, connect_timeout_s: 60}
"""


def hil(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.mark.slow
def test_a_running_plant_is_pushed_from_the_command_line(tmp_path: Path,
                                                         endpoint: str) -> None:
    (tmp_path / "push.yaml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "hil.cli", "run", "--config",
                            str(tmp_path / "push.yaml"), "--endpoint", endpoint, "--out",
                            str(tmp_path / "out"), *NO_HTML], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    try:
        give_up = time.monotonic() + 90
        while True:  # until the plant serves and its run has started (each try waits 1 s)
            pushed = hil("push", "--endpoint", endpoint, "force=3", "--for", "50ms",
                         "--timeout", "1")
            if pushed.returncode == 0 or time.monotonic() > give_up or run.poll() is not None:
                break
            assert pushed.returncode in (1, 3), pushed.stderr
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert pushed.stdout.startswith("push: pushed force by 3 N for 50 ms from t = ")
        beyond = hil("push", "--endpoint", endpoint, "force=500", "--for", "50ms")
        assert beyond.returncode == 1
        assert "refused: force=500 N is beyond the input's limits [-20, 20] N" in beyond.stdout
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode in (0, 1), err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_passed_but_timing(report)
    pushes = json.loads((tmp_path / "out" / "plant.json").read_text())["pushes"]
    assert pushes["applied"] == 1 and pushes["refused"] >= 1
    (event,) = pushes["events"]
    assert (event["input"], event["value"], event["duration_ms"]) == ("force", 3.0, 50.0)
    assert 0.0 <= event["time_s"] < 5.0

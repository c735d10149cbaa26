"""The swing-up configs end to end through the real processes (`hil run`): each starts
hanging and PASSes in lockstep, its report carrying the swing-up time its gate bounds and
the law's hand-over; the rotary one also in realtime (its timing gates judged by the
benchmarks on this shared machine, as tests/conftest.py says)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_HTML, assert_passed_but_timing, free_endpoint

ROOT = Path(__file__).resolve().parents[2]


def hil_run(config: str, out: Path, *sets: str) -> dict:
    args = [sys.executable, "-m", "hil.cli", "run", "--config", config, "--out", str(out),
            "--endpoint", free_endpoint(), *NO_HTML, *sets]
    done = subprocess.run(args, cwd=ROOT, text=True, capture_output=True, timeout=300)
    report = json.loads((out / "report.json").read_text())
    report["exit"] = done.returncode
    report["output"] = done.stdout + done.stderr
    return report


@pytest.mark.slow
@pytest.mark.parametrize(("config", "duration_s"), [("configs/rotary-swingup.yaml", 3),
                                                    ("configs/cartpole-swingup.yaml", 4)])
def test_each_swingup_config_passes_in_lockstep_from_hanging(
        tmp_path: Path, config: str, duration_s: int) -> None:
    report = hil_run(config, tmp_path / "run", "--set", f"run.duration_s={duration_s}")
    assert report["exit"] == 0 and report["verdict"] == "PASS", report["output"]
    swingup = report["experiment"]["swingup"]
    assert swingup["caught"] and 0.5 < swingup["time_s"] < duration_s
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["metrics.swingup.time_s"]["passed"]
    assert gates["metrics.swingup.time_s"]["value"] == swingup["time_s"]
    # Hanging at the start; upright (a whole number of turns later, maybe) at the end.
    assert report["config"]["plant"]["initial_state"][1] == math.pi
    final = report["final_state"][1]
    assert abs(final - 2 * math.pi * round(final / (2 * math.pi))) < 0.02
    assert report["experiment"]["metrics"]["swingup.caught"] == 1.0


@pytest.mark.slow
def test_the_rotary_swingup_passes_in_realtime(tmp_path: Path) -> None:
    report = hil_run("configs/rotary-swingup.yaml", tmp_path / "run", "--set",
                     "run.mode=realtime", "--set", "plant.watchdog_timeout_ms=250", "--set",
                     "run.duration_s=3")
    assert_passed_but_timing(report)
    assert report["experiment"]["swingup"]["caught"], report["output"]

"""The swing-up configs end to end through the real processes (`hil run`): each starts
hanging and PASSes in lockstep, its report carrying the swing-up time its gate bounds and
the law's hand-over; the rotary one also in realtime (its timing gates judged by the
benchmarks on this shared machine, as tests/conftest.py says)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runs_together import run_together

from tests.conftest import NO_HTML, assert_passed_but_timing, free_endpoint

ROOT = Path(__file__).resolve().parents[2]


def _argv(config: str, out: Path, *sets: str) -> list[str]:
    return [sys.executable, "-m", "hil.cli", "run", "--config", config, "--out", str(out),
            "--endpoint", free_endpoint(), *NO_HTML, *sets]


def _report(out: Path, done: subprocess.CompletedProcess[str]) -> dict:
    report = json.loads((out / "report.json").read_text())
    report["exit"] = done.returncode
    report["output"] = done.stdout + done.stderr
    return report


def hil_run(config: str, out: Path, *sets: str) -> dict:
    done = subprocess.run(_argv(config, out, *sets), cwd=ROOT, text=True, capture_output=True,
                          timeout=300)
    return _report(out, done)


LOCKSTEP = [("configs/rotary-swingup.yaml", 3), ("configs/cartpole-swingup.yaml", 4)]


@pytest.fixture(scope="module")
def lockstep_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each swing-up config's lockstep run, the two side by side (lockstep does not care how
    the runs share the machine): {config: its report, with hil run's exit and output}."""
    root = tmp_path_factory.mktemp("swingups")
    outs = {config: root / Path(config).stem for config, _ in LOCKSTEP}
    done = run_together([_argv(config, outs[config], "--set", f"run.duration_s={duration_s}",
                               "--set", "controller.connect_timeout_s=60")
                         for config, duration_s in LOCKSTEP], ROOT, dict(os.environ), 300)
    return {config: _report(outs[config], d) for (config, _), d in zip(LOCKSTEP, done,
                                                                       strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize(("config", "duration_s"), LOCKSTEP)
def test_each_swingup_config_passes_in_lockstep_from_hanging(
        lockstep_reports: dict[str, dict], config: str, duration_s: int) -> None:
    report = lockstep_reports[config]
    assert report["exit"] == 0 and report["verdict"] == "PASS", report["output"]
    assert report["mode"] == "lockstep" and report["duration_s"] == duration_s
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

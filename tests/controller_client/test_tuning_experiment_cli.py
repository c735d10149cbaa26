"""Issue 24's step response, end to end: `hil tune` for settling time from the command line,
then the tuned and the default gains through the real processes (lockstep `hil run`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_endpoint

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cartpole-step-tune.yaml"


def run(config: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "hil"), "run", "--config", str(config), "--out",
                             str(out), "--endpoint", free_endpoint(), "--set",
                             "record.html=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen[str], out: Path) -> dict:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0 and "verdict: PASS" in output, output
    return dict(json.loads((out / "report.json").read_text()))


@pytest.mark.slow
def test_a_step_tuned_for_settling_time_settles_sooner_in_the_real_runs(tmp_path: Path
                                                                       ) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    config["record"] = {"history_db": None}
    path = tmp_path / "step.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([str(BIN / "hil"), "tune", "--config", str(path), "--budget", "20",
                           "--draws", "2", "--seed", "2", "--out", str(tmp_path / "t")],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "t" / "tuning.json").read_text())
    held = record["experiment_metrics"]["held_out_mean"]
    assert held["tuned"]["x.settling_time_s"] < held["baseline"]["x.settling_time_s"]
    assert record["held_out"]["tuned_failed_draws"] == 0
    assert "Experiment metrics, mean over the held-out draws" in (
        tmp_path / "t" / "tuning.html").read_text()
    runs = [(run(tmp_path / "t" / "tuned.yaml", tmp_path / "tuned"), tmp_path / "tuned"),
            (run(path, tmp_path / "defaults"), tmp_path / "defaults")]
    tuned, defaults = (finished(p, out)["experiment"]["metrics"] for p, out in runs)
    assert tuned["x.settling_time_s"] < defaults["x.settling_time_s"] - 0.2

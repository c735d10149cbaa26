"""End to end with real processes: a run leaves recordings, report.html, plots and a history
entry; a SIGKILLed plant still leaves a recording that exports all but its last ~100 ms."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_endpoint
from finished_run import DURATION_S, FinishedRun, finished_run

from hil.cli import main
from hil.recording.recorder import RecordingError, read_recording
from hil.reporting import history


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """Lockstep: this test is about what the run leaves, not about a loaded machine."""
    return finished_run(tmp_path_factory)


@pytest.mark.slow
def test_a_run_leaves_recordings_html_plots_and_a_history_entry(run: FinishedRun) -> None:
    done, out, db = run.done, run.out, run.history_db
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    assert f"history: {db} (run {report['run_id']})" in done.stdout
    assert report["score"] == 100.0 and report["started_at"].endswith("Z")
    assert report["recording"]["plant"]["rows_dropped"] == 0
    assert "dropped_records" in {g["name"] for g in report["gates"]}

    assert (out / "report.html").exists()
    assert len(list(out.glob("*.png"))) >= 2
    plant = read_recording(out / "plant.rec")
    controller = read_recording(out / "controller.rec")
    assert plant.complete and controller.complete
    np.testing.assert_array_equal(plant["seq"], np.arange(plant.rows))
    assert plant.rows == report["cycles"]  # one row per plant step, the final state too
    assert controller.rows == report["latency_us"]["compute"]["count"]
    assert plant["sim_time_s"][-1] == pytest.approx(DURATION_S)

    runs = history.list_runs(db)
    assert [r["run_id"] for r in runs] == [report["run_id"]]
    assert runs[0]["verdict"] == "PASS" and runs[0]["plant"] == "dip"
    assert main(["replay", str(out)]) == 0


@pytest.mark.realtime
def test_sigkill_of_the_plant_leaves_a_recording_that_exports(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    endpoint = free_endpoint()
    common = ["--out", str(out), "--run-id", "killed", "--endpoint", endpoint]
    config = tmp_path / "run.yaml"
    config.write_text("run:\n  duration_s: 30\n")
    plant = subprocess.Popen([sys.executable, "-m", "plant_server.main", "--config", str(config),
                              *common], stderr=subprocess.DEVNULL)
    controller = subprocess.Popen([sys.executable, "-m", "controller_client.main", "--config",
                                   str(config), *common], stderr=subprocess.DEVNULL)
    try:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:  # until a second of plant steps is on disk
            try:
                if read_recording(out / "plant.rec").rows > 1000:
                    break
            except (OSError, RecordingError):
                pass
            time.sleep(0.05)
        time.sleep(0.3)
        killed_ns = time.monotonic_ns()
        os.kill(plant.pid, signal.SIGKILL)
        plant.wait(10)
        controller.wait(20)  # it notices the silent plant and ends with its report
    finally:
        for p in (plant, controller):
            if p.poll() is None:
                p.kill()
    assert not (out / "plant.json").exists()  # SIGKILL: no chance to write it

    csv = tmp_path / "killed.csv"
    assert main(["export", str(out), "--output", str(csv)]) == 0
    table = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64, usecols=(0, 1))
    assert len(table) > 1000
    np.testing.assert_array_equal(table[:, 0], np.arange(len(table)))  # no step missing
    lost_ms = (killed_ns - table[-1, 1]) / 1e6
    assert lost_ms <= 100, f"the last {lost_ms:.0f} ms of plant steps were lost"
    assert json.loads((out / "controller.json").read_text())["recording"]["rows_dropped"] == 0

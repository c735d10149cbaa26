"""`hil estop` and SIGTERM of the plant: the plant applies its safe output before anything
else, then ends the run cleanly, tells the controller and writes its report."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    FLAG_SAFE,
    ROOT,
    STOP_TO_SAFE_NS,
    finish,
    free_endpoint,
    kill_all,
    recording,
    report,
    start_attached,
    write_config,
)

# A patient watchdog: the subject is what makes the plant safe here, and a loaded machine's
# 20 ms stall of the controller would trip the watchdog first.
PATIENT_WATCHDOG_MS = 250


def first_safe_row(out: Path) -> tuple[int, np.ndarray]:
    rec = recording(out)
    safe = (rec["flags"].astype(int) & FLAG_SAFE) != 0
    assert safe.any() and (rec["force"][safe] == 0.0).all()
    assert safe[np.argmax(safe):].all()  # safe from the first safe row to the end
    return int(rec["t_ns"][safe][0]), rec["force"][~safe]


@pytest.mark.realtime
def test_hil_estop_makes_the_plant_safe_then_ends_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__duration_s=30.0,
                          plant__watchdog_timeout_ms=PATIENT_WATCHDOG_MS)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(0.3)
        asked_ns = time.monotonic_ns()
        estop = subprocess.run([sys.executable, "-m", "hil.cli", "estop", "--endpoint",
                                endpoint, "--reason", "smoke from the motor"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        answered_ns = time.monotonic_ns()
        code, err = finish(plant)
        ccode, cerr = finish(controller)
    finally:
        kill_all(plant, controller)
    assert estop.returncode == 0 and "e-stop: safe output applied" in estop.stdout, estop.stderr
    assert code == 1, err  # ended by a fault
    r = report(out, "plant")
    assert r["end_reason"] == "estop: smoke from the motor"
    assert r["safe_state"] is True and r["safety"]["estop"] == "smoke from the motor"
    safe_from_ns, before = first_safe_row(out)
    assert asked_ns < safe_from_ns < answered_ns
    assert np.count_nonzero(before) > 0.9 * len(before)  # it was being driven
    assert ccode == 0, cerr
    assert report(out, "controller")["end_reason"] == (
        "plant ended the run: estop: smoke from the motor")


@pytest.mark.realtime
def test_sigterm_on_the_plant_makes_it_safe_then_it_reports_and_says_bye(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0,
                          plant__watchdog_timeout_ms=PATIENT_WATCHDOG_MS)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(0.3)
        signalled_ns = time.monotonic_ns()
        code, err = finish(plant, signal.SIGTERM)
        ccode, cerr = finish(controller)
    finally:
        kill_all(plant, controller)
    assert code == 0, err
    r = report(out, "plant")
    assert r["signal"] == "SIGTERM" and r["end_reason"] == "stopped"
    assert r["safe_state"] is True and r["safe_reason"] == "stopped by a signal"
    safe_from_ns, _ = first_safe_row(out)
    assert signalled_ns < safe_from_ns < signalled_ns + STOP_TO_SAFE_NS
    assert ccode == 0, cerr
    assert report(out, "controller")["end_reason"] == "plant ended the run: stopped"

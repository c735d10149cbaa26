"""Recovery after a controller dies: the plant stays latched through a controller restart
until an explicit clear, by the operator (`hil clear`) or by a restarted controller with
`controller.clear_on_attach`; then the new controller drives it again.

The pendulum falls while the controller restarts (as it would on the rig), so the state
limits are off here: this is about the latch and the clear, not about balancing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    DETECT_TO_SAFE_NS,
    FLAG_SAFE,
    ROOT,
    SAFE_MARGIN_MS,
    WATCHDOG_TIMEOUT_MS,
    finish,
    free_endpoint,
    kill_all,
    recording,
    report,
    start,
    wait_for_event,
    write_config,
)


def wait_attached(out: Path, proc: subprocess.Popen[str]) -> None:
    wait_for_event(out, "controller", "attached", proc)
    time.sleep(0.3)  # it runs for a while


@pytest.mark.slow
@pytest.mark.realtime
def test_the_plant_stays_latched_through_a_restart_until_cleared_then_recovers(
        tmp_path: Path) -> None:
    out = tmp_path / "plant"
    endpoint = free_endpoint()
    limits_off = {"safety__track_limit_m": None, "safety__angle_limit_rad__realtime": None}
    config = write_config(out, endpoint, run__duration_s=120.0, **limits_off)
    restart = write_config(tmp_path / "c3", endpoint, run__duration_s=120.0,
                           controller__clear_on_attach=True, **limits_off)
    plant = start("plant", config, out)
    first = start("controller", config, tmp_path / "c1")
    procs = [plant, first]
    try:
        wait_attached(tmp_path / "c1", first)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start("controller", config, tmp_path / "c2")  # no clear: stays latched
        procs.append(second)
        wait_attached(tmp_path / "c2", second)
        cleared = subprocess.run([sys.executable, "-m", "hil.cli", "clear", "--endpoint",
                                  endpoint], cwd=ROOT, capture_output=True, text=True,
                                 timeout=60)
        time.sleep(0.3)
        second.send_signal(signal.SIGKILL)
        second.wait()
        third = start("controller", restart, tmp_path / "c3")  # clears on attach
        procs.append(third)
        wait_attached(tmp_path / "c3", third)
        code, err = finish(plant, signal.SIGINT)
        third_code, third_err = finish(third)
    finally:
        kill_all(*procs)
    assert cleared.returncode == 0 and cleared.stdout.strip() == "clear: cleared: watchdog", (
        cleared.stdout + cleared.stderr)
    assert code == 0, err
    assert third_code == 0, third_err
    r = report(out, "plant")
    wd = r["watchdog"]
    assert wd["trips"] == 2 and not wd["latched"]  # one per killed controller, both cleared
    assert all(WATCHDOG_TIMEOUT_MS <= t["time_to_safe_ms"] <= WATCHDOG_TIMEOUT_MS + SAFE_MARGIN_MS
               and t["safe_output_ns"] - t["detected_ns"] < DETECT_TO_SAFE_NS
               for t in wd["events"])
    by_operator, by_controller = r["safety"]["clear_events"]
    assert by_operator["by"].startswith("operator: ") and by_operator["cleared"] == "watchdog"
    assert by_controller["by"] == "controller" and by_controller["cleared"] == "watchdog"
    assert r["controls_while_safe"] > 100  # the second controller's, before the clear
    assert r["safe_reason"] == "stopped by a signal"
    # Latched from each trip to its clear; driven again after each clear.
    rec = recording(out)
    t, flags, force = rec["t_ns"], rec["flags"].astype(int), rec["force"]
    safe = (flags & FLAG_SAFE) != 0
    for trip, clear in zip(wd["events"], (by_operator, by_controller), strict=True):
        held = (t > trip["safe_output_ns"]) & (t < clear["t_ns"])
        assert held.sum() > 500 and safe[held].all() and (force[held] == 0.0).all()
        driven = (t > clear["t_ns"] + 5_000_000) & (t < clear["t_ns"] + 200_000_000)
        assert driven.sum() > 100 and not safe[driven].any()
        assert np.count_nonzero(force[driven]) > 0.9 * driven.sum()

"""A frozen controller (SIGSTOP, then SIGCONT 200 ms later): the plant trips its watchdog
during the freeze and stays latched after the controller resumes; the resumed controller
is told (FLAG_SAFE) and its controls are ignored until a clear. A controller stopped by
SIGTERM says bye first: the plant applies its safe output at once and ends the run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    DETECT_TO_SAFE_NS,
    SAFE_MARGIN_MS,
    STOP_TO_SAFE_NS,
    WATCHDOG_TIMEOUT_MS,
    finish,
    free_endpoint,
    kill_all,
    recording,
    report,
    start_attached,
    write_config,
)

from plant_server.faults import freeze


@pytest.mark.realtime
def test_sigstop_trips_the_watchdog_and_the_plant_stays_latched_after_sigcont(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(0.3)
        stopped_ns = time.monotonic_ns()
        freeze(controller.pid, 0.2)
        resumed_ns = time.monotonic_ns()
        time.sleep(0.4)  # the resumed controller runs on against a latched plant
        assert controller.poll() is None and plant.poll() is None
        code, err = finish(plant, signal.SIGINT)
        ccode, cerr = finish(controller)
    finally:
        kill_all(plant, controller)
    assert code == 0, err
    r = report(out, "plant")
    wd = r["watchdog"]
    assert wd["trips"] == 1 and wd["latched"] is True and r["safe_reason"] == "watchdog"
    (trip,) = wd["events"]
    assert trip["last_feed_ns"] < stopped_ns + STOP_TO_SAFE_NS  # at most what was in flight
    assert trip["safe_output_ns"] - trip["detected_ns"] < DETECT_TO_SAFE_NS
    assert trip["safe_output_ns"] < resumed_ns
    assert WATCHDOG_TIMEOUT_MS <= trip["time_to_safe_ms"] <= WATCHDOG_TIMEOUT_MS + SAFE_MARGIN_MS
    assert r["controls_while_safe"] > 100  # the resumed controller's, all ignored
    rec = recording(out)
    after = rec["t_ns"] > trip["safe_output_ns"]
    assert np.all(rec["force_n"][after] == 0.0)
    c = report(out, "controller")
    assert ccode == 0, cerr
    assert c["states_while_safe"] > 100
    assert c["end_reason"] == "plant ended the run: stopped"


@pytest.mark.realtime
def test_sigterm_on_the_controller_puts_the_plant_in_its_safe_state_first(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(0.3)
        signalled_ns = time.monotonic_ns()
        ccode, cerr = finish(controller, signal.SIGTERM)
        code, err = finish(plant)  # ends by itself: the controller left
    finally:
        kill_all(plant, controller)
    assert ccode == 0, cerr
    assert code == 0, err
    r = report(out, "plant")
    assert r["end_reason"] == "controller left"
    assert r["safe_state"] is True and r["safe_reason"] == "controller left"
    assert r["watchdog"]["trips"] == 0  # the bye came well before any timeout
    rec = recording(out)
    safe = (rec["flags"].astype(int) & 1) != 0
    first_safe_ns = rec["t_ns"][safe][0]
    assert signalled_ns < first_safe_ns < signalled_ns + STOP_TO_SAFE_NS
    assert np.all(rec["force_n"][safe] == 0.0)
    assert report(out, "controller")["signal"] == "SIGTERM"

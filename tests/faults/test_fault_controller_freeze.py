"""A frozen controller (SIGSTOP, then SIGCONT 200 ms later): the plant trips its watchdog
during the freeze and stays latched after the controller resumes; the resumed controller
is told (FLAG_SAFE) and its controls are ignored until a clear. A controller stopped by
SIGTERM says bye first: the plant applies its safe output at once and ends the run."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    DETECT_TO_SAFE_NS,
    FLAG_SAFE,
    SAFE_MARGIN_MS,
    STOP_TO_SAFE_NS,
    TRANSPORTS,
    WATCHDOG_TIMEOUT_MS,
    finish,
    free_endpoint,
    kill_all,
    recording,
    report,
    start_attached,
    write_config,
)

from hil.recording.recorder import RecordingTail
from plant_server.faults import freeze

WAIT_S = 30.0  # generous bound for a loaded 2-core machine; the waits end on the event


class PlantTail:
    """The plant's recording as it is written, to wait on what the plant did (not on time)."""

    def __init__(self, out: Path) -> None:
        self._tail = RecordingTail(out / "plant.rec")
        self._parts: list[dict[str, np.ndarray]] = []

    def wait(self, done: Callable[[dict[str, np.ndarray]], bool], what: str
             ) -> dict[str, np.ndarray]:
        give_up = time.monotonic() + WAIT_S
        while time.monotonic() < give_up:
            new = self._tail.poll()
            if new and len(next(iter(new.values()))):
                self._parts.append(new)
            if self._parts:
                rows = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
                if done(rows):
                    return rows
            time.sleep(0.02)  # the recorder flushes every 50 ms
        raise AssertionError(f"not within {WAIT_S} s: {what}")


def _first_safe(rows: dict[str, np.ndarray]) -> int:
    safe = np.flatnonzero(rows["flags"].astype(int) & FLAG_SAFE)
    return int(safe[0]) if len(safe) else -1


def _controls_since_safe(rows: dict[str, np.ndarray]) -> int:
    first = _first_safe(rows)
    if first < 0:
        return 0
    return int(rows["control_seq"][-1] - rows["control_seq"][first])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.realtime
def test_sigstop_trips_the_watchdog_and_the_plant_stays_latched_after_sigcont(
        tmp_path: Path, transport: str) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0,
                          run__transport=transport)
    plant, controller = start_attached(config, out)
    tail = PlantTail(out)
    try:
        tail.wait(lambda rows: np.count_nonzero(rows["control_seq"] > 0) >= 100,
                  "100 steps under control before the freeze")
        stopped_ns = time.monotonic_ns()
        freeze(controller.pid, 0.2)
        resumed_ns = time.monotonic_ns()
        # The resumed controller runs on against a latched plant: 150 more controls.
        rows = tail.wait(lambda rows: _controls_since_safe(rows) >= 150,
                         "150 controls after the trip")
        trip_control_seq = int(rows["control_seq"][_first_safe(rows)])
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
    # Every control from the first after the trip on is counted while safe: at least those
    # the recording saw, at most all the controller sent (the last may be in flight).
    seen = int(recording(out)["control_seq"].max()) - trip_control_seq
    assert 150 <= seen <= r["controls_while_safe"]
    assert r["controls_while_safe"] <= report(out, "controller")["controls_sent"] - trip_control_seq
    rec = recording(out)
    after = rec["t_ns"] > trip["safe_output_ns"]
    assert np.all(rec["force"][after] == 0.0)
    c = report(out, "controller")
    assert ccode == 0, cerr
    assert c["states_while_safe"] >= 150  # each of those controls answered a safe state
    assert c["end_reason"] == "plant ended the run: stopped"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.realtime
def test_sigterm_on_the_controller_puts_the_plant_in_its_safe_state_first(
        tmp_path: Path, transport: str) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0,
                          run__transport=transport)
    plant, controller = start_attached(config, out)
    try:
        PlantTail(out).wait(lambda rows: np.count_nonzero(rows["control_seq"] > 0) >= 100,
                            "100 steps under control")
        signalled_ns = time.monotonic_ns()
        ccode, cerr = finish(controller, signal.SIGTERM)
        code, err = finish(plant)  # ends by itself: the controller left
    finally:
        kill_all(plant, controller)
    assert ccode == 0, cerr
    assert code == 0, err
    r = report(out, "plant")
    assert r["end_reason"] == "controller left"
    # Safe first: by the controller's bye, or, when a loaded machine holds the stopping
    # controller past the 20 ms watchdog before its bye goes out, by the watchdog (the
    # backstop); either way within STOP_TO_SAFE_NS of the signal (below).
    assert r["safe_state"] is True and r["safe_reason"] in ("controller left", "watchdog")
    assert r["watchdog"]["trips"] == (r["safe_reason"] == "watchdog")
    rec = recording(out)
    safe = (rec["flags"].astype(int) & 1) != 0
    first_safe_ns = rec["t_ns"][safe][0]
    assert signalled_ns < first_safe_ns < signalled_ns + STOP_TO_SAFE_NS
    assert np.all(rec["force"][safe] == 0.0)
    assert report(out, "controller")["signal"] == "SIGTERM"

"""A controller that starts slowly (its clock sync across a slow link, a law's warm-up, a
loaded machine) is not taken for a lost one: the watchdog's first period is the start-up
budget, and deadlines count from the first control on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import (
    finish,
    free_endpoint,
    kill_all,
    outputs,
    report,
    start,
    start_script,
    wait_for_event,
    write_config,
)

FIRST_MS = 300  # the controller's first answer comes this long after its welcome
# The watchdog, well under FIRST_MS; not the default 20 ms, which a loaded machine's stall of
# the scripted controller (plain Python, no SCHED_FIFO) trips after the start-up.
WATCHDOG_MS = 100


@pytest.mark.realtime
def test_a_first_control_later_than_the_watchdog_timeout_does_not_latch_the_plant(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__mode="realtime", run__duration_s=1.0,
                          run__start_delay_ms=0, plant__watchdog_timeout_ms=WATCHDOG_MS,
                          safety__angle_limit_rad__realtime=None)  # 0 N: it falls
    plant = start("plant", config, out)
    wait_for_event(out, "plant", "plant serving", plant)
    scripted = start_script("scripted_controller.py", endpoint, "-1", "0", str(FIRST_MS))
    try:
        scode, sout, serr = outputs(scripted, timeout_s=60.0)
        code, err = finish(plant)
    finally:
        kill_all(plant, scripted)
    assert scode == 0, serr
    script = json.loads(sout)
    r = report(out, "plant")
    assert (code, r["end_reason"]) == (0, "duration"), err
    assert r["watchdog"]["trips"] == 0 and r["safe_state"] is False
    # The start-up, measured by the plant on its own clock, was longer than the watchdog's
    # timeout; the states published meanwhile are not deadlines of the controller's.
    first_ms = r["watchdog"]["first_control_ms"]
    assert first_ms >= FIRST_MS - 5 > WATCHDOG_MS
    assert r["deadline"]["before_first_control"] >= first_ms - 2
    assert r["deadline"]["total"] + r["deadline"]["before_first_control"] >= 990
    assert 0 < r["controls_applied"] <= script["controls_sent"]


@pytest.mark.realtime
def test_a_first_control_later_than_the_start_up_budget_latches_the_plant_saying_so(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__mode="realtime", run__duration_s=1.0,
                          run__start_delay_ms=0, plant__first_control_timeout_ms=50,
                          safety__angle_limit_rad__realtime=None)
    plant = start("plant", config, out)
    wait_for_event(out, "plant", "plant serving", plant)
    scripted = start_script("scripted_controller.py", endpoint, "-1", "0", str(FIRST_MS))
    try:
        scode, _sout, serr = outputs(scripted, timeout_s=60.0)
        finish(plant)
    finally:
        kill_all(plant, scripted)
    assert scode == 0, serr
    r = report(out, "plant")
    assert r["watchdog"]["trips"] == 1 and r["safe_reason"] == "watchdog"
    (event,) = r["watchdog"]["events"]
    assert event["before_first_control"] is True
    assert 50 <= event["time_to_safe_ms"] < FIRST_MS  # the budget, not the 20 ms timeout

"""A NaN control from the attached controller: rejected (it never reaches the actuator), the
non-finite gate trips at that step, the safe output is applied and the lockstep run ends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    FLAG_SAFE,
    TRANSPORTS,
    finish,
    free_endpoint,
    kill_all,
    outputs,
    recording,
    report,
    start,
    start_script,
    wait_for_event,
    write_config,
)

NAN_AT = 150  # the state whose answer is NaN: simulated t = 0.150 s


def test_a_nan_control_trips_the_non_finite_gate_and_never_reaches_the_actuator(
        tmp_path: Path) -> None:
    # Over ZeroMQ: the gate and the lockstep step it trips at are the plant's; the NaN over
    # shared memory is the realtime test's below (both transports) and test_shm.py's.
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__mode="lockstep", run__duration_s=5.0,
                          run__transport="zmq")
    plant = start("plant", config, out)
    wait_for_event(out, "plant", "plant serving", plant)  # the script gives up after 2 s
    scripted = start_script("scripted_controller.py", endpoint, str(NAN_AT))
    try:
        scode, sout, serr = outputs(scripted, timeout_s=60.0)
        code, err = finish(plant)
    finally:
        kill_all(plant, scripted)
    assert scode == 0, serr
    assert code == 1, err  # the run ended by a fault
    script = json.loads(sout)
    r = report(out, "plant")
    assert r["end_reason"] == "safety: non_finite_control"
    assert r["rejected_by_kind"] == {"non_finite": 1}
    assert r["safe_state"] is True and r["safety"]["trips"] == 1
    (event,) = r["safety"]["events"]
    assert event["gate"] == "non_finite_control" and event["value"] == "nan"
    assert event["time"] == pytest.approx(NAN_AT * 1e-3)  # its step, on the simulated clock
    assert event["t_ns"] >= script["nan_sent_ns"]  # same monotonic clock, both processes
    assert r["controls_applied"] == NAN_AT  # states 0..149 answered with 0 N, then NaN
    assert script["bye"] == "safety: non_finite_control"
    assert script["flags_after"] and script["flags_after"][-1] & FLAG_SAFE
    rec = recording(out)
    assert np.isfinite(rec["force"]).all()
    assert np.isfinite(np.column_stack([rec[n] for n in ("x", "theta1", "theta2")])).all()
    assert rec["force"][-1] == 0.0 and int(rec["flags"][-1]) & FLAG_SAFE


NAN_TICKS = 500  # realtime: a controller sending NaN for half a second at 1 kHz


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.realtime
def test_nan_every_tick_in_realtime_trips_once_and_counts_the_rest_unlogged(
        tmp_path: Path, transport: str) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    # A patient watchdog: the scripted controller is plain Python without SCHED_FIFO, and a
    # loaded machine's 20 ms stall of it would trip the watchdog before its first NaN.
    config = write_config(out, endpoint, run__mode="realtime", run__duration_s=2.0,
                          run__transport=transport, plant__watchdog_timeout_ms=250)
    plant = start("plant", config, out)
    wait_for_event(out, "plant", "plant serving", plant)
    scripted = start_script("scripted_controller.py", endpoint, str(NAN_AT), str(NAN_TICKS))
    try:
        scode, sout, serr = outputs(scripted, timeout_s=60.0)
        code, err = finish(plant)
    finally:
        kill_all(plant, scripted)
    assert scode == 0, serr
    assert code == 0, err  # it ran its duration, holding its safe output from the trip on
    script = json.loads(sout)
    r = report(out, "plant")
    assert r["end_reason"] == "duration" and r["safe_reason"] == "safety: non_finite_control"
    assert r["safety"]["trips"] == 1  # once, not once per NaN
    (event,) = r["safety"]["events"]
    assert event["gate"] == "non_finite_control" and event["value"] == "nan"
    assert r["rejected_by_kind"] == {"non_finite": 1}
    if transport == "zmq":
        assert script["nans_sent"] == NAN_TICKS
    else:  # newest state only: a script the loaded machine delays skips some states
        assert NAN_TICKS / 4 <= script["nans_sent"] <= NAN_TICKS
    # Every later control is counted while safe: all the other NaNs at least (sent mid-run),
    # at most every control sent from the first NaN on, but that one.
    assert script["nans_sent"] - 1 <= r["controls_while_safe"] <= script["sent_from_nan"] - 1
    assert r["controls_applied"] <= NAN_AT  # none after the trip
    log = [json.loads(line) for line in (out / "plant.log.jsonl").read_text().splitlines()]
    trips = [e for e in log if e["event"].startswith("safety gate tripped")]
    rejected = [e for e in log if e["event"] == "message rejected"]
    assert len(trips) == 1 and trips[0]["gate"] == "non_finite_control"
    assert len(rejected) == 1 and rejected[0]["kind"] == "non_finite"

"""A controller that got the plant's inputs wrong: it answers every state of the 1-input DIP
with 2 inputs. Over ZeroMQ each such control is rejected `bad_shape`, the rejection naming
the plant's input count; none reaches the actuator or reloads the watchdog, so the plant
goes safe when its first-control timeout runs out. Over shared memory the control slot holds
the plant's own count: the controller's write is refused at its end, and the plant is not
disturbed by the attempt (it goes safe and ends its run as over ZeroMQ)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from faultkit import (
    FLAG_SAFE,
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

FIRST_CONTROL_MS = 200.0  # the watchdog before the first valid control: before the DIP falls
BAD_SHAPE = "control.u has 2 entries; the plant has 1 inputs ['force']"


def _run(tmp_path: Path, transport: str) -> tuple[Path, int, str, int, dict, str]:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__mode="realtime", run__duration_s=1.5,
                          run__transport=transport,
                          plant__first_control_timeout_ms=FIRST_CONTROL_MS)
    plant = start("plant", config, out)
    wait_for_event(out, "plant", "plant serving", plant)  # the script gives up after 2 s
    # No NaN (-1), one per NaN, no slow start, 2 inputs whatever the plant says.
    scripted = start_script("scripted_controller.py", endpoint, "-1", "1", "0", "2")
    try:
        scode, sout, serr = outputs(scripted, timeout_s=60.0)
        code, err = finish(plant, timeout_s=20.0)
    finally:
        kill_all(plant, scripted)
    return out, scode, serr, code, json.loads(sout), err


def _assert_never_applied_and_safe_from_the_first_control_timeout(out: Path) -> dict:
    r = report(out, "plant")
    assert r["end_reason"] == "duration"
    assert r["controls_applied"] == 0
    wd = r["watchdog"]
    assert wd["trips"] == 1 and wd["events"][0]["before_first_control"] is True
    assert r["safe_state"] is True and r["safety"]["trips"] == 0
    rec = recording(out)
    assert rec.inputs == ("force",)
    assert (rec["force"] == 0.0).all()  # nothing the controller sent reached the actuator
    assert int(rec["flags"][-1]) & FLAG_SAFE
    return r


def test_over_zmq_a_control_of_two_inputs_is_refused_bad_shape_naming_the_plants_one(
        tmp_path: Path) -> None:
    out, scode, serr, code, script, err = _run(tmp_path, "zmq")
    assert scode == 0 and script["send_error"] is None, serr
    assert code == 0, err
    r = _assert_never_applied_and_safe_from_the_first_control_timeout(out)
    # Every control is rejected for its shape, and nothing else; those sent after the
    # plant's last read (its bye) are never counted.
    rejected = r["rejected_by_kind"]
    assert set(rejected) == {"bad_shape"}, rejected
    assert 100 < rejected["bad_shape"] <= script["controls_sent"], (rejected, script)
    log = [json.loads(line) for line in (out / "plant.log.jsonl").read_text().splitlines()]
    lines = [e for e in log if e["event"] == "message rejected"]
    assert lines and all(e["kind"] == "bad_shape" and e["detail"] == BAD_SHAPE for e in lines)
    assert len(lines) <= 3  # at most once a second per kind, over a 1.5 s run


def test_over_shm_a_control_of_two_inputs_is_refused_and_the_plant_is_undisturbed(
        tmp_path: Path) -> None:
    out, _scode, serr, code, script, err = _run(tmp_path, "shm")
    # The controller is told at once, naming the plant's input count.
    assert script["send_error"] is not None and "1 input" in script["send_error"], (script, serr)
    assert script["controls_sent"] == 1  # the one it tried
    assert code == 0, err
    r = _assert_never_applied_and_safe_from_the_first_control_timeout(out)
    assert r["rejected_by_kind"] == {}
    assert np.isfinite(recording(out)["x"]).all()

"""Hostile peers during a run: 1000 junk messages of mixed kinds, and a second controller.

The runs are lockstep, where every state must be answered and applied before the next
step: any disturbance of the attached controller would show as a deadline miss, a
watchdog trip or a failed verdict. Each run must still pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_HTML
from faultkit import (
    ROOT,
    START_TIMEOUT_S,
    child_pid,
    finish,
    free_endpoint,
    kill_all,
    outputs,
    recording,
    report,
    rss_kb,
    start,
    start_script,
    wait_for_controlled_steps,
    wait_for_event,
    write_config,
)

JUNK = 1000
# The junk kinds and what the plant counts them as (tests/faults/junk_peer.py).
JUNK_REJECTIONS = {"malformed", "unknown_kind", "bad_arity", "bad_type", "bad_shape",
                   "non_finite", "unattached_peer", "already_attached", "version_mismatch",
                   "oversized"}


def hil_run(config: Path, out: Path, own_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hil.cli", "run", "--config", str(config),
                             *NO_HTML, "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=own_session)


def assert_undisturbed(out: Path, run_code: int, run_out: str) -> dict:
    assert run_code == 0, run_out
    merged = json.loads((out / "report.json").read_text())
    assert merged["verdict"] == "PASS"
    p = report(out, "plant")
    assert p["end_reason"] == "duration"
    assert p["watchdog"]["trips"] == 0 and p["safety"]["trips"] == 0
    assert p["deadline"]["misses"] == 0 and p["controls_applied"] == p["cycles"] - 1
    assert report(out, "controller")["exit_code"] == 0
    return p


@pytest.mark.slow
def test_a_junk_peer_is_rejected_and_counted_and_the_run_still_passes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__mode="lockstep", run__duration_s=10.0)
    junk = start_script("junk_peer.py", endpoint, str(JUNK), "7")  # waits for "go"
    run = hil_run(config, out)
    try:
        wait_for_event(out, "plant", "controller attached", run)
        plant_pid = child_pid(run.pid, "plant")
        rss_before = rss_kb(plant_pid)
        assert junk.stdin is not None and junk.stdout is not None
        junk.stdin.write("go\n")
        junk.stdin.flush()
        sent = json.loads(junk.stdout.readline() or "{}")  # written once all is sent
        code, err = finish(run)
        jcode, _jout, jerr = outputs(junk)  # closes its stdin: it leaves
    finally:
        kill_all(run, junk)
    assert jcode == 0, jerr
    p = assert_undisturbed(out, code, err)
    assert sent["sent"] == JUNK and sent["failed"] == 0, (sent, _times(out))
    assert set(p["rejected_by_kind"]) <= JUNK_REJECTIONS
    # Every junk message that reached the plant is rejected and counted once, as its kind
    # says; only the transport-oversized ones never reach it (ZeroMQ drops them).
    by_kind, rejected = sent["by_kind"], p["rejected_by_kind"]
    assert p["rejected_messages"] == JUNK - by_kind["transport_oversized"], (rejected, sent)
    assert rejected.get("already_attached", 0) == by_kind.get("hello", 0)
    assert rejected.get("version_mismatch", 0) == by_kind.get("old_hello", 0)
    assert rejected.get("non_finite", 0) == by_kind.get("nan_input", 0) + by_kind.get(
        "inf_second_input", 0)
    assert rejected.get("bad_shape", 0) == by_kind.get("nine_inputs", 0)
    assert rejected.get("bad_type", 0) == by_kind.get("bad_type", 0) + by_kind.get(
        "scalar_input", 0)
    assert rejected.get("oversized", 0) == by_kind.get("oversized", 0)
    assert rejected.get("unattached_peer", 0) == sum(by_kind.get(k, 0) for k in (
        "huge_input", "two_inputs", "replayed_control", "stranger_clear", "stranger_bye",
        "stranger_state"))
    peak_kb = p["max_rss_mb"] * 1024  # the plant's own peak, over the whole run
    print(f"junk: {p['rejected_messages']} of {JUNK} rejected, plant RSS {rss_before} kB "
          f"before, peak {peak_kb:.0f} kB")
    # Every junk message reached the plant during the run, before its end.
    assert sent["end_ns"] < recording(out)["t_ns"][-1]
    # Memory stays bounded: the flood costs the plant (almost) nothing.
    assert peak_kb - rss_before < 8 * 1024, (rss_before, peak_kb)


@pytest.mark.slow
def test_a_second_controller_is_refused_as_already_attached_and_the_run_is_unaffected(
        tmp_path: Path) -> None:
    # Over shared memory: a second controller is refused at its hello, on the ZeroMQ socket
    # both transports use (no data plane is offered to it), so the run's data plane is the
    # one that could be disturbed; the junk test above runs over ZeroMQ.
    out = tmp_path / "run"
    # A run long enough for any machine (lockstep goes as fast as the link: 30 s of plant time
    # took 1.5 s over shm on a quiet machine, 60 s under load), ended by Ctrl-C once the
    # second controller has been refused.
    config = write_config(out, free_endpoint(), run__mode="lockstep", run__duration_s=3600.0,
                          run__transport="shm")
    run = hil_run(config, out, own_session=True)
    second = None
    try:
        wait_for_event(out, "plant", "controller attached", run)
        second = start("controller", config, tmp_path / "second")
        # Refused at its hello (4), or, were the plant never to answer, "no answer" (3) after
        # its own connect timeout: either way it ends within that, and says which.
        try:
            scode, serr = finish(second, timeout_s=START_TIMEOUT_S + 30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe plant's log ends: {_log_tail(out)}") from None
        assert run.poll() is None, "the second controller must be refused during the run"
        wait_for_controlled_steps(out, 100, run)  # the run went on past the refusal
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code, err = finish(run)
    finally:
        kill_all(run, *([second] if second else []))
    assert scode == 4
    assert "already attached" in serr
    assert "already attached" in report(tmp_path / "second", "controller")["end_reason"]
    assert code == 1, err  # cut short by the Ctrl-C: a failed verdict, not a crash
    # Unaffected until the Ctrl-C: nothing tripped, every state answered in turn, and the
    # second controller's hello and bye are all the plant rejected.
    p = report(out, "plant")
    assert p["signal"] == "SIGINT" and p["cycles"] > 100, p["end_reason"]
    assert p["watchdog"]["trips"] == 0 and p["safety"]["trips"] == 0
    assert p["deadline"]["misses"] == 0 and p["controls_applied"] >= p["cycles"] - 2
    assert p["rejected_by_kind"] == {"already_attached": 1, "unattached_peer": 1}  # hello, bye
    assert report(out, "controller")["rejected_messages"] == 0


def _log_tail(out: Path, lines: int = 8) -> str:
    return "\n".join((out / "plant.log.jsonl").read_text().splitlines()[-lines:])


def _times(out: Path) -> list[str]:
    return [line[:300] for line in (out / "plant.log.jsonl").read_text().splitlines()
            if "rejected" not in line]

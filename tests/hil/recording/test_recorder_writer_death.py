"""A recorder whose writer thread dies says why, counts every row it then loses, and the
run fails with that reason (issue 10, defect 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.config import GatesConfig
from hil.recording import recorder
from hil.recording.recorder import Recorder
from hil.reporting.scoring import evaluate

COLUMNS = [("x", "m"), ("force", "N")]


class BrokenRow:
    """A row whose iteration raises what nobody expects (not a packing error): a bug in
    whoever recorded it."""

    def __iter__(self) -> Iterator[float]:
        raise RuntimeError("row exploded")

    def __len__(self) -> int:
        return 2


def wait_dead(thread: threading.Thread, timeout_s: float) -> None:
    thread.join(timeout_s)
    assert not thread.is_alive(), f"writer still alive after {timeout_s} s"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_that_dies_reports_why_and_counts_every_row_it_loses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(tmp_path / "r.rec", COLUMNS, flush_interval_s=0.01)

    def driver_bug(fd: int, data: bytes) -> None:  # not an OSError: nothing the writer expects
        raise RuntimeError("boom")

    monkeypatch.setattr(recorder, "_write_all", driver_bug)  # after the file's header
    rec.record((1.0, 2.0))
    rec.record(BrokenRow())  # type: ignore[arg-type]  # refused in the loop, never raised
    rec.record((3.0, 4.0))
    wait_dead(rec._thread, 10.0)
    for i in range(5):  # after its death: refused and counted
        rec.record((float(i), 0.0))
    stats = rec.close()
    assert stats.error == "writer thread died: RuntimeError: boom"
    assert stats.rows_written == 0 and stats.rows_rejected == 1
    assert stats.rows_dropped == 2 + 5  # the rows it was writing, then every later row


def test_a_recording_error_fails_the_run_naming_it() -> None:
    report = {"mode": "lockstep", "gates": [], "recording": {
        "plant": {"rows_dropped": 0, "error": "writer thread died: RuntimeError: boom"},
        "controller": {"rows_dropped": 0, "error": None}}}
    gates, _score, verdict = evaluate(report, GatesConfig())
    (failed,) = [g for g in gates if g["name"] == "recording_error"]
    assert failed["value"] == "plant: writer thread died: RuntimeError: boom"
    assert failed["passed"] is False and failed["critical"] is True
    assert verdict == "FAIL"


def test_a_clean_recording_adds_no_error_gate() -> None:
    report = {"mode": "lockstep", "gates": [], "recording": {
        "plant": {"rows_dropped": 0, "error": None}}}
    gates, _score, verdict = evaluate(report, GatesConfig())
    assert "recording_error" not in {g["name"] for g in gates} and verdict == "PASS"

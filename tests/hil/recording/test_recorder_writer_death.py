"""A recorder whose writer (process or thread) dies says why, counts every row it then loses,
and the run fails with that reason (issue 10, defect 5)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.config import GatesConfig
from hil.recording import ringwriter
from hil.recording.recorder import Recorder, read_recording
from hil.reporting.scoring import evaluate

COLUMNS = [("x", "m"), ("force", "N")]


def wait_written(rec: Recorder, rows: int, timeout_s: float) -> None:
    give_up = time.monotonic() + timeout_s
    while rec.statistics().rows_written < rows:
        assert time.monotonic() < give_up, f"{rows} rows not written within {timeout_s} s"
        time.sleep(0.01)


def test_a_writer_process_that_is_killed_is_named_and_every_row_it_lost_counted(
        tmp_path: Path) -> None:
    path = tmp_path / "r.rec"
    rec = Recorder(path, COLUMNS, flush_interval_s=0.01, writer="process")
    assert rec._proc is not None
    for i in range(3):
        rec.record((float(i), 0.0))
    wait_written(rec, 3, 10.0)
    os.kill(rec._proc.pid, signal.SIGKILL)
    rec._proc.wait(10)
    for i in range(5):  # after its death: packed, never written, counted at close
        rec.record((float(i), 1.0))
    stats = rec.close()
    assert stats.error == "writer process died: killed by SIGKILL"
    assert (stats.rows_written, stats.rows_dropped) == (3, 5)
    read = read_recording(path)  # what it wrote is there; the file says it was not closed
    assert read.rows == 3 and not read.complete


def test_a_stop_signal_at_the_writer_process_s_start_leaves_it_writing(tmp_path: Path) -> None:
    """A Ctrl-C to the run's process group reaches the writer too, possibly while its
    interpreter is still starting: held off from its first instruction, it writes on until
    the loop closes it."""
    path = tmp_path / "r.rec"
    rec = Recorder(path, COLUMNS, flush_interval_s=0.01, writer="process")
    assert rec._proc is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # at once: before its interpreter has started
        os.kill(rec._proc.pid, sig)
    for i in range(5):
        rec.record((float(i), 0.0))
    wait_written(rec, 5, 30.0)
    stats = rec.close()
    assert stats.error is None and (stats.rows_written, stats.rows_dropped) == (5, 0)
    assert read_recording(path).complete


class BrokenRow:
    """A row whose iteration raises what nobody expects (not a packing error)."""

    def __iter__(self) -> Iterator[float]:
        raise RuntimeError("row exploded")

    def __len__(self) -> int:
        return 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_thread_that_dies_reports_why_and_counts_every_row_it_loses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(tmp_path / "r.rec", COLUMNS, flush_interval_s=0.01, writer="thread")

    def driver_bug(fd: int, data: bytes) -> None:  # not an OSError: nothing the writer expects
        raise RuntimeError("boom")

    monkeypatch.setattr(ringwriter, "write_all", driver_bug)
    rec.record((1.0, 2.0))
    rec.record(BrokenRow())  # type: ignore[arg-type]  # refused in the loop, never raised
    rec.record((3.0, 4.0))
    assert rec._thread is not None
    rec._thread.join(10.0)
    assert not rec._thread.is_alive(), "writer still alive after 10 s"
    for i in range(5):  # after its death: packed, never written, counted at close
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


def test_a_writer_process_that_cannot_start_raises_why_and_leaks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """posix_spawn itself fails (no interpreter at sys.executable): the constructor raises
    that error, not one of its own clean-up, and closes the file, the ring and the pipe once
    each (it closed the file twice, so an EBADF hid the real error)."""
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    before = open_fds()
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-python"))
    with pytest.raises(FileNotFoundError) as exc:
        Recorder(tmp_path / "r.rec", COLUMNS, writer="process")
    assert "no-python" in str(exc.value)
    assert open_fds() <= before
    monkeypatch.undo()
    rec = Recorder(tmp_path / "r.rec", COLUMNS, writer="process")  # the path is reusable
    rec.record((1.0, 2.0))
    assert rec.close().rows_written == 1

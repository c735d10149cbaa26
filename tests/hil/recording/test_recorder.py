"""Recorder: rows round-trip exactly, drops are counted, torn tails are ignored and reported."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hil.recording import recorder, ringwriter
from hil.recording.recorder import Column, Recorder, RecordingError, RecordingTail, read_recording

COLUMNS = [Column("seq", "", "i8"), Column("t_ns", "ns", "i8"), ("x", "m"), ("force", "N")]
# A writer that only writes when closed: chunking and counts are then deterministic.
LAZY = {"flush_interval_s": 60.0, "fsync_interval_s": 0.0}


def rows(n: int, start: int = 0) -> list[tuple[int, int, float, float]]:
    return [(i, 2**60 + i, i * 0.25, -i / 3) for i in range(start, start + n)]


def write(path: Path, data: list, **kwargs) -> recorder.RecorderStatistics:
    rec = Recorder(path, COLUMNS, {"run_id": "r1"}, **{**LAZY, **kwargs})
    for row in data:
        rec.record(row)
    return rec.close()


def test_rows_round_trip_exactly_with_types_units_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "a.rec"
    stats = write(path, rows(1000), max_rows_per_chunk=300)
    assert (stats.rows_written, stats.rows_dropped, stats.rows_rejected) == (1000, 0, 0)
    assert stats.chunks_written == 4 + 1  # 300+300+300+100, then the end marker
    assert stats.error is None and stats.fsyncs == 1
    rec = read_recording(path)
    assert list(rec) == ["seq", "t_ns", "x", "force"]
    assert rec.units == {"seq": "", "t_ns": "ns", "x": "m", "force": "N"}
    assert rec.meta == {"run_id": "r1"}
    assert rec["seq"].dtype == np.int64 and rec["x"].dtype == np.float64
    np.testing.assert_array_equal(rec["seq"], np.arange(1000))
    np.testing.assert_array_equal(rec["t_ns"], 2**60 + np.arange(1000))  # exact beyond 2**53
    np.testing.assert_array_equal(rec["force"], -np.arange(1000) / 3)
    assert rec.rows == 1000 and rec.chunks == 5
    assert rec.complete and rec.truncated_bytes == 0 and rec.problem is None


def test_an_empty_recording_reads_as_empty_columns(tmp_path: Path) -> None:
    write(tmp_path / "e.rec", [])
    rec = read_recording(tmp_path / "e.rec")
    assert rec.complete and rec.rows == 0
    assert rec["seq"].dtype == np.int64 and rec["x"].shape == (0,)


def test_numpy_rows_and_a_flushing_writer(tmp_path: Path) -> None:
    path = tmp_path / "f.rec"
    rec = Recorder(path, [("a", "m"), ("b", "m")], flush_interval_s=0.005)
    for i in range(50):
        rec.record(np.array([i, -i], dtype=float))
        time.sleep(0.0005)
    deadline = time.monotonic() + 5
    while rec.statistics().rows_written < 50 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert rec.statistics().rows_written == 50  # written while still open
    assert read_recording(path).rows == 50
    rec.close()
    np.testing.assert_array_equal(read_recording(path)["b"], -np.arange(50.0))


def test_a_full_queue_drops_rows_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "d.rec"
    stats = write(path, rows(105), capacity=100)
    assert stats.rows_dropped == 5 and stats.rows_written == 100
    assert stats.max_queue_depth == 100
    rec = read_recording(path)
    np.testing.assert_array_equal(rec["seq"], np.arange(100))  # the oldest are kept
    assert rec.dropped == 5


def test_rows_recorded_after_close_are_dropped_not_raised(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "c.rec", COLUMNS, **LAZY)
    rec.record(rows(1)[0])
    rec.close()
    rec.record(rows(1)[0])
    assert rec.close().rows_dropped == 1
    assert read_recording(tmp_path / "c.rec").rows == 1


def test_malformed_rows_are_rejected_and_the_rest_written(tmp_path: Path) -> None:
    path = tmp_path / "m.rec"
    good = rows(3)
    stats = write(path, [good[0], (1, 2, 3.0), good[1], ("x", 1, 2.0, 3.0), None, good[2]])
    assert stats.rows_rejected == 3 and stats.rows_written == 3
    np.testing.assert_array_equal(read_recording(path)["seq"], [0, 1, 2])


def test_a_write_error_is_reported_and_later_rows_counted_as_dropped(tmp_path: Path) -> None:
    """A real write error in the writer process: a file-size limit it inherits (EFBIG)."""
    path = tmp_path / "w.rec"
    rec = Recorder(path, COLUMNS, writer="process", **LAZY)
    assert rec._proc is not None
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.prlimit(rec._proc.pid, resource.RLIMIT_FSIZE, (4096, hard))  # the header fits
    for row in rows(1000):
        rec.record(row)
    stats = rec.close()
    assert stats.error is not None and "File too large" in stats.error
    assert stats.rows_written == 0 and stats.rows_dropped == 1000
    read = read_recording(path)
    assert read.rows == 0 and not read.complete


def test_an_end_marker_that_cannot_be_written_leaves_a_readable_unclosed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.rec"
    real = ringwriter.write_all

    def full_at_the_end(fd: int, data: bytes) -> None:
        if data.startswith(recorder.END_MAGIC):
            raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(ringwriter, "write_all", full_at_the_end)  # the writer on a thread
    stats = write(path, rows(10), writer="thread")
    assert stats.rows_written == 10 and "No space left" in stats.error
    read = read_recording(path)
    assert read.rows == 10 and not read.complete and read.problem is None


@pytest.mark.parametrize("cut", [1, 7, 30, 100])
def test_a_torn_last_chunk_is_ignored_and_reported(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "t.rec"
    write(path, rows(40), max_rows_per_chunk=10)
    full = path.read_bytes()
    end_marker = recorder._CHUNK.size
    path.write_bytes(full[:len(full) - end_marker - cut])  # drop the end marker, tear chunk 3
    rec = read_recording(path)
    np.testing.assert_array_equal(rec["seq"], np.arange(30))
    assert not rec.complete and rec.chunks == 3
    assert rec.truncated_bytes == len(full) - end_marker - cut - rec_bytes_before(path, 3)
    assert rec.problem is not None and "chunk 3" in rec.problem


def rec_bytes_before(path: Path, chunk: int) -> int:
    header = recorder._HEAD.size + recorder._HEAD.unpack_from(path.read_bytes())[2] + 4
    return header + chunk * (recorder._CHUNK.size + 10 * 8 * len(COLUMNS))


def test_a_corrupt_last_chunk_fails_its_crc_and_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "k.rec"
    write(path, rows(20), max_rows_per_chunk=10)
    data = bytearray(path.read_bytes())
    data[-recorder._CHUNK.size - 5] ^= 0xFF  # a byte of chunk 1's payload
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert rec.rows == 10 and "CRC32" in rec.problem
    assert rec.truncated_bytes == recorder._CHUNK.size * 2 + 10 * 8 * len(COLUMNS)


def test_the_reader_refuses_what_is_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rec"
    bad.write_bytes(b"hello world, not a recording")
    with pytest.raises(RecordingError, match="not a hil recording"):
        read_recording(bad)
    good = tmp_path / "good.rec"
    write(good, rows(2))
    data = bytearray(good.read_bytes())
    data[8] = 9  # format version 9
    bad.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="version 9; this reader reads version 1"):
        read_recording(bad)
    data = bytearray(good.read_bytes())
    data[recorder._HEAD.size + 2] ^= 0x20  # a byte of the JSON header
    bad.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="header fails its CRC32"):
        read_recording(bad)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"columns": []}, "at least one column"),
    ({"columns": [("a", "m"), ("a", "s")]}, "distinct"),
    ({"columns": [("a", "m", "f4")]}, "'f8' or 'i8'"),
    ({"capacity": 0}, "capacity"),
    ({"flush_interval_s": 0}, "flush_interval_s"),
    ({"fsync_interval_s": -1}, "fsync_interval_s"),
    ({"max_rows_per_chunk": 0}, "max_rows_per_chunk"),
])
def test_bad_arguments_are_refused_with_the_argument_named(
        tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"path": tmp_path / "x.rec", "columns": COLUMNS, **kwargs}
    with pytest.raises(ValueError, match=match):
        Recorder(**args)
    assert not (tmp_path / "x.rec").exists()


_CHILD = textwrap.dedent("""
    import sys, time
    from hil.recording.recorder import Recorder
    rec = Recorder(sys.argv[1], [("seq", "", "i8"), ("t_ns", "ns", "i8"), ("x", "m")])
    period = 1_000_000
    deadline = time.monotonic_ns()
    i = 0
    print("recording", flush=True)
    while True:
        rec.record((i, time.monotonic_ns(), i * 0.5))
        i += 1
        deadline += period
        delay = deadline - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
""")


@pytest.mark.realtime
def test_sigkill_loses_at_most_the_last_100_ms(tmp_path: Path) -> None:
    path = tmp_path / "killed.rec"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert child.stdout.readline().strip() == "recording"
        time.sleep(0.8)
        killed_ns = time.monotonic_ns()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    rec = read_recording(path)
    assert not rec.complete and rec.dropped == 0
    np.testing.assert_array_equal(rec["seq"], np.arange(rec.rows))  # no gaps
    assert rec.rows > 500
    lost_ms = (killed_ns - int(rec["t_ns"][-1])) / 1e6
    assert lost_ms <= 100, f"the last {lost_ms:.0f} ms before SIGKILL were lost"


def test_a_tail_returns_each_chunk_once_and_waits_for_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "live.rec"
    tail = RecordingTail(path)
    assert tail.poll() == {}  # no file yet
    write(path, rows(30), max_rows_per_chunk=10)
    full = path.read_bytes()
    header = rec_bytes_before(path, 0)
    chunk = recorder._CHUNK.size + 10 * 8 * len(COLUMNS)
    path.write_bytes(full[:header - 3])
    assert tail.poll() == {}  # header not complete yet
    path.write_bytes(full[:header + chunk + 40])  # chunk 0 and part of chunk 1
    first = tail.poll()
    np.testing.assert_array_equal(first["seq"], np.arange(10))
    assert tail.poll()["seq"].size == 0  # nothing new, the torn chunk is not returned
    path.write_bytes(full)
    rest = tail.poll()
    np.testing.assert_array_equal(rest["seq"], np.arange(10, 30))
    assert rest["t_ns"].dtype == np.int64 and [c.name for c in tail.columns][:2] == ["seq", "t_ns"]

"""Run recording: rows from a real-time loop to an append-only chunked file, off the loop.

The loop calls `Recorder.record(row)` once per step: it packs the row (little-endian
int64/float64 fields) straight into a preallocated ring of `capacity` rows, O(1), never
blocking, never raising; a full ring drops the row and counts it, a row of the wrong length
or type is counted as rejected. A writer thread wakes every `flush_interval_s`, copies the
packed rows out as one chunk (row after row, with a CRC32) and hands it to the kernel with
one `os.write`. Packing in the loop, ~1 us a row spread over the steps, keeps the writer's
own Python short: the writer holds the interpreter lock for a copy and a header, not for
packing a whole flush of rows, which (~0.2 ms a flush at 5 kHz) held the loop off the lock
and cost deadlines (benchmarks/bench_shm.py, README "The same-host fast path"). Once
written, a chunk belongs to the OS page cache, so a SIGKILL of the process loses only the
rows still queued: at most about one flush interval (50 ms by default). The
writer also calls `os.fsync` every `fsync_interval_s` and at `close()`, off the loop's
thread, which bounds the loss on a power cut or kernel crash as well.

`read_recording(path)` reads a file back into a `Recording` (a dict of column name to
array). A torn or corrupt last chunk, as a killed writer leaves, is ignored and reported in
`truncated_bytes` and `problem`; `complete` says whether the writer closed the file.

The file format is specified in docs/recording.md.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.config import RecordConfig

__all__ = [
    "FORMAT_VERSION",
    "INPUT_COLUMN",
    "Column",
    "Recorder",
    "RecorderStatistics",
    "Recording",
    "RecordingError",
    "RecordingTail",
    "controller_columns",
    "input_column",
    "plant_columns",
    "read_recording",
]

MAGIC = b"HILREC\r\n"
FORMAT_VERSION = 1
CHUNK_MAGIC = b"HRCK"
END_MAGIC = b"HREN"
# File header: magic, format version, length of the JSON description that follows.
_HEAD = struct.Struct("<8sHI")
_CRC = struct.Struct("<I")
# Chunk header: magic, chunk index, row count, rows dropped so far, CRC32 of the header's
# first four fields followed by the payload.
_CHUNK = struct.Struct("<4sIIQI")
_CHUNK_CRC_SPAN = _CHUNK.size - _CRC.size
_DTYPES = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8")}
_CODES = {"f8": "d", "i8": "q"}  # the same, as struct format codes
_COLUMN_FIELDS = ("name", "unit", "dtype", "label")


class RecordingError(ValueError):
    """The file is not a recording this reader understands; the message says why."""


@dataclass(frozen=True, slots=True)
class Column:
    """One recorded column: its name, its unit ("" for a pure number) and its type.

    `dtype` is "f8" (float64) or "i8" (int64: sequence numbers, nanosecond times, flags).
    `label` is the name a person sees (a CSV header, an MCAP field) when it differs from the
    name the column is read by: the plant's input is the column `force_n` in every recording
    (the readers find the state columns by it), labelled with the input's own name
    ("voltage" for the rotary) and in its own unit. "" means the name is the label.
    """

    name: str
    unit: str = ""
    dtype: str = "f8"
    label: str = ""

    @property
    def title(self) -> str:
        """What a person sees: the label, else the name."""
        return self.label or self.name

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("column name must be non-empty")
        if self.dtype not in _DTYPES:
            raise ValueError(f"column {self.name!r}: dtype must be 'f8' or 'i8', "
                             f"got {self.dtype!r}")


ColumnSpec = Column | tuple[str, str] | tuple[str, str, str]


def _as_column(spec: ColumnSpec) -> Column:
    return spec if isinstance(spec, Column) else Column(*spec)


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """A snapshot of a `Recorder`.

    `rows_dropped` counts rows refused because the ring was full, the writer had failed or
    the recorder was closed; `rows_rejected` counts rows of the wrong length or type, which
    `record()` refused. `error` is the writer's first I/O error, or why the writer thread
    died, if either.
    """

    rows_written: int
    rows_dropped: int
    rows_rejected: int
    chunks_written: int
    bytes_written: int
    max_queue_depth: int
    fsyncs: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Record rows of `columns` into `path` from one loop thread, written by a second thread.

    `record()` and `close()` are meant to be called from the same (loop) thread. Rows are
    tuples (or sequences) with one int or float per column, in column order.
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[ColumnSpec],
        meta: Mapping[str, Any] | None = None,
        *,
        capacity: int = 65_536,
        flush_interval_s: float = 0.05,
        fsync_interval_s: float = 1.0,
        max_rows_per_chunk: int = 8192,
    ) -> None:
        self.columns = tuple(_as_column(c) for c in columns)
        if not self.columns:
            raise ValueError("columns must name at least one column, got none")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"column names must be distinct, got {names!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 row, got {capacity}")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        if fsync_interval_s < 0:
            raise ValueError(f"fsync_interval_s must be >= 0 (0: only at close), "
                             f"got {fsync_interval_s}")
        if max_rows_per_chunk < 1:
            raise ValueError(f"max_rows_per_chunk must be >= 1, got {max_rows_per_chunk}")
        self.path = Path(path)
        self._row = struct.Struct("<" + "".join(_CODES[c.dtype] for c in self.columns))
        # The ring: `capacity` packed rows. The loop writes row number w at slot w % capacity
        # and then advances `_w`; the writer copies rows [_r, _w) out and then advances `_r`.
        # Each index has one writer, and the interpreter lock orders the two threads' steps.
        self._pack_into = self._row.pack_into
        self._size = self._row.size
        self._slots = capacity
        self._ring = bytearray(capacity * self._row.size)
        self._view = memoryview(self._ring)
        self._w = 0  # rows packed so far (the loop's)
        self._r = 0  # rows taken out so far (the writer's)
        self._capacity = capacity  # 0 once closed or the writer failed: rows are refused
        self._dropped = 0  # counted by the loop thread
        self._lost = 0  # rows the writer could not write, counted by the writer thread
        self._flush_interval_s = flush_interval_s
        self._fsync_interval_s = fsync_interval_s
        self._max_rows = max_rows_per_chunk
        self._written = 0
        self._rejected = 0
        self._chunks = 0
        self._bytes = 0
        self._max_depth = 0
        self._fsyncs = 0
        self._error: str | None = None
        self._stop = threading.Event()
        self._closed = False
        header = json.dumps({
            "columns": [asdict(c) for c in self.columns],
            "meta": dict(meta or {}),
            "created_unix_s": time.time(),
        }, allow_nan=False).encode()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            _write_all(self._fd, _HEAD.pack(MAGIC, FORMAT_VERSION, len(header)) + header
                       + _CRC.pack(zlib.crc32(header)))
        except OSError:
            os.close(self._fd)
            raise
        self._thread = threading.Thread(target=self._writer, name=f"recorder:{self.path.name}",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, path: str | Path, columns: Sequence[ColumnSpec], config: RecordConfig,
                    meta: Mapping[str, Any] | None = None) -> Recorder:
        """A recorder with the queue and flush settings of the config's `record` section."""
        return cls(path, columns, meta, capacity=config.queue_rows,
                   flush_interval_s=config.flush_interval_ms / 1000.0,
                   fsync_interval_s=config.fsync_interval_s)

    # ----------------------------------------------------------------- loop side
    def record(self, row: Sequence[float]) -> None:
        """Pack one row into the ring. O(1); never blocks, never raises; a full ring drops
        and counts it, a row of the wrong length or type is counted as rejected."""
        w = self._w
        if w - self._r >= self._capacity:
            self._dropped += 1
            return
        try:
            self._pack_into(self._ring, (w % self._slots) * self._size, *row)
        except Exception:  # wrong length or type, or not a sequence at all
            self._rejected += 1
            return
        self._w = w + 1

    def close(self) -> RecorderStatistics:
        """Write what is queued, mark the file complete, fsync it, and stop the writer."""
        if not self._closed:
            self._closed = True
            self._capacity = 0  # rows recorded from now on are dropped and counted
            self._stop.set()
            self._thread.join()
            self._lost += self._w - self._r  # left by a writer that died: dropped, counted
            self._r = self._w
        return self.statistics()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(
            rows_written=self._written,
            rows_dropped=self._dropped + self._lost,
            rows_rejected=self._rejected,
            chunks_written=self._chunks,
            bytes_written=self._bytes,
            max_queue_depth=self._max_depth,
            fsyncs=self._fsyncs,
            error=self._error,
        )

    # ----------------------------------------------------------------- writer thread
    def _writer(self) -> None:
        next_fsync = time.monotonic() + self._fsync_interval_s
        try:
            while True:
                stopping = self._stop.wait(self._flush_interval_s)
                self._flush()
                if self._fsync_interval_s and time.monotonic() >= next_fsync:
                    self._fsync()
                    next_fsync = time.monotonic() + self._fsync_interval_s
                if stopping:
                    break
            if self._error is None:
                self._write_chunk(END_MAGIC, b"", 0)
                self._fsync()
        except OSError as exc:  # the end marker could not be written: the file reads as torn
            self._error = self._error or f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # a bug: say so, and drop (and count) the rows from now on
            self._error = self._error or f"writer thread died: {type(exc).__name__}: {exc}"
            self._capacity = 0
            raise
        finally:
            os.close(self._fd)

    def _flush(self) -> None:
        r = self._r
        depth = self._w - r
        self._max_depth = max(self._max_depth, depth)
        while depth:
            n = min(depth, self._max_rows)
            payload = self._take(r, n) if self._error is None else b""
            r += n
            self._r = r  # the slots are free for the loop again
            depth -= n
            if self._error is not None:
                self._lost += n
                continue
            try:
                self._write_chunk(CHUNK_MAGIC, payload, n)
            except OSError as exc:
                self._error = f"{type(exc).__name__}: {exc}"
                self._capacity = 0
                self._lost += n
                continue
            except BaseException:  # the writer dies of it (see _writer): count the chunk lost
                self._lost += n
                raise
            self._written += n

    def _take(self, r: int, n: int) -> bytes:
        """Rows r .. r + n - 1 of the ring, packed, as one bytes (copied: the loop may reuse
        their slots as soon as `_r` passes them)."""
        size, slots = self._size, self._slots
        start = (r % slots) * size
        end = start + n * size
        if end <= len(self._ring):
            return bytes(self._view[start:end])
        return bytes(self._view[start:]) + bytes(self._view[:end - len(self._ring)])

    def _write_chunk(self, magic: bytes, payload: bytes, rows: int) -> None:
        dropped = self._dropped + self._lost
        head = _CHUNK.pack(magic, self._chunks, rows, dropped, 0)[:_CHUNK_CRC_SPAN]
        crc = zlib.crc32(payload, zlib.crc32(head))
        _write_all(self._fd, head + _CRC.pack(crc) + payload)
        self._chunks += 1
        self._bytes += _CHUNK.size + len(payload)

    def _fsync(self) -> None:
        try:
            os.fsync(self._fd)
            self._fsyncs += 1
        except OSError as exc:
            if self._error is None:
                self._error = f"fsync: {type(exc).__name__}: {exc}"


def _state_columns(names: Sequence[str], units: Sequence[str]) -> list[Column]:
    if len(names) != len(units):
        raise ValueError(f"state_units must give one unit per state name: {len(names)} names "
                         f"{list(names)!r}, {len(units)} units")
    return [Column(n, u) for n, u in zip(names, units, strict=True)]


INPUT_COLUMN = "force_n"  # the plant's input, whatever it is: see Column.label


def input_column(input_name: str = "force", input_unit: str = "N") -> Column:
    """The plant's input as a column: read as `force_n` (its historical name, which every
    reader of a recording looks for), labelled and in the unit of the plant's description."""
    if not input_name:
        raise ValueError("input_name must be non-empty (the plant description's input_name)")
    return Column(INPUT_COLUMN, input_unit, "f8", input_name)


def plant_columns(state_names: Sequence[str], state_units: Sequence[str],
                  input_name: str = "force", input_unit: str = "N") -> list[Column]:
    """The columns of plant.rec: one row per plant step (docs/recording.md)."""
    return [Column("seq", "", "i8"), Column("t_ns", "ns", "i8"), Column("sim_time_s", "s"),
            *_state_columns(state_names, state_units), input_column(input_name, input_unit),
            Column("flags", "", "i8"), Column("lateness_ns", "ns", "i8"),
            Column("control_seq", "", "i8"), Column("answered_seq", "", "i8"),
            Column("round_trip_ns", "ns", "i8")]


def controller_columns(state_names: Sequence[str], state_units: Sequence[str],
                       input_name: str = "force", input_unit: str = "N") -> list[Column]:
    """The columns of controller.rec: one row per control sent (docs/recording.md)."""
    return [Column("control_seq", "", "i8"), Column("state_seq", "", "i8"),
            Column("state_t_ns", "ns", "i8"), Column("rx_ns", "ns", "i8"),
            Column("send_ns", "ns", "i8"), Column("compute_ns", "ns", "i8"),
            Column("lateness_ns", "ns", "i8"), *_state_columns(state_names, state_units),
            input_column(input_name, input_unit), Column("sigma"), Column("mass_condition")]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Recording(dict[str, np.ndarray]):
    """A recording read back: column name -> array, plus what the file said about itself.

    `units` maps each column to its unit and `labels` to the name a person sees (the input
    column `force_n` is labelled with the plant's input name); `meta` is what the writer
    stored; `dropped` is the
    writer's count of dropped rows as of its last intact chunk; `complete` is True when the
    writer closed the file; `truncated_bytes` counts the bytes after the last intact chunk,
    ignored, and `problem` says why they were (None when there were none).
    """

    def __init__(self, columns: Sequence[Column], data: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any], *, version: int, chunks: int, dropped: int,
                 complete: bool, truncated_bytes: int, problem: str | None) -> None:
        super().__init__(data)
        self.columns = tuple(_labelled_input(columns, meta))
        self.units = {c.name: c.unit for c in self.columns}
        self.labels = {c.name: c.title for c in self.columns}
        self.meta = dict(meta)
        self.version = version
        self.chunks = chunks
        self.dropped = dropped
        self.complete = complete
        self.truncated_bytes = truncated_bytes
        self.problem = problem

    @property
    def rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0


def _labelled_input(columns: Sequence[Column], meta: Mapping[str, Any]) -> list[Column]:
    """Recordings written before columns had labels called every input `force_n` in N; the
    plant's description in their header (plant.rec) says what it really was."""
    desc = meta.get("plant")
    if not isinstance(desc, Mapping) or not desc.get("input_name"):
        return list(columns)
    return [Column(c.name, str(desc.get("input_unit") or c.unit), c.dtype,
                   str(desc["input_name"]))
            if c.name == INPUT_COLUMN and not c.label else c for c in columns]


def read_recording(path: str | Path) -> Recording:
    """Read a recording; ignore (and report) a torn or corrupt tail. Raises RecordingError."""
    data = Path(path).read_bytes()
    columns, meta, pos = _read_header(path, data)
    scan = _scan(data, pos, _record_dtype(columns), 0)
    return Recording(columns, _split(scan.table, columns), meta, version=FORMAT_VERSION,
                     chunks=scan.chunks, dropped=scan.dropped, complete=scan.complete,
                     truncated_bytes=len(data) - scan.end if scan.problem else 0,
                     problem=scan.problem)


class RecordingTail:
    """Follow a recording while it is written: `poll()` returns the rows added since.

    For live views of a run in progress: a chunk not yet complete is left for the next poll,
    and a file that does not exist yet (or has no complete header yet) has no rows.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: tuple[Column, ...] = ()
        self.meta: dict[str, Any] = {}  # the header's meta, once the header is read
        self._record: np.dtype | None = None
        self._pos = 0
        self._chunks = 0

    def poll(self) -> dict[str, np.ndarray]:
        try:
            with self.path.open("rb") as f:
                if self._record is None:
                    try:
                        columns, self.meta, self._pos = _read_header(self.path, f.read())
                    except RecordingError:
                        return {}
                    self.columns = tuple(columns)
                    self._record = _record_dtype(columns)
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return {}
        scan = _scan(data, 0, self._record, self._chunks, self._pos)
        self._pos += scan.end
        self._chunks += scan.chunks
        return _split(scan.table, self.columns)


@dataclass(frozen=True, slots=True)
class _Scan:
    table: np.ndarray  # the rows of the intact chunks
    end: int  # offset just after the last intact chunk
    chunks: int
    dropped: int  # as the last intact chunk says (0 without one)
    complete: bool  # the end marker was read
    problem: str | None  # why scanning stopped before the end of `data`


def _scan(data: bytes, pos: int, record: np.dtype, index: int, base: int = 0) -> _Scan:
    """The chunks from `pos` on, the first numbered `index`; `base` offsets byte positions."""
    blocks = [np.empty(0, record)]
    chunks = dropped = 0
    complete = False
    problem = None
    while pos < len(data):
        where = f"at byte {base + pos}"
        if len(data) - pos < _CHUNK.size:
            problem = f"torn chunk header {where}"
            break
        magic, number, rows, dropped_so_far, crc = _CHUNK.unpack_from(data, pos)
        if magic not in (CHUNK_MAGIC, END_MAGIC) or number != index + chunks:
            problem = f"no chunk {index + chunks} {where}"
            break
        start = pos + _CHUNK.size
        end = start + rows * record.itemsize
        if end > len(data):
            problem = f"chunk {index + chunks} {where} is cut short"
            break
        payload = memoryview(data)[start:end]
        if zlib.crc32(payload, zlib.crc32(data[pos:pos + _CHUNK_CRC_SPAN])) != crc:
            problem = f"chunk {index + chunks} {where} fails its CRC32"
            break
        blocks.append(np.frombuffer(data, record, rows, start))
        chunks += 1
        dropped = dropped_so_far
        pos = end
        if magic == END_MAGIC:
            complete = True
            if pos < len(data):
                problem = f"{len(data) - pos} bytes after the end marker"
            break
    return _Scan(np.concatenate(blocks), pos, chunks, dropped, complete, problem)


def _record_dtype(columns: Sequence[Column]) -> np.dtype:
    return np.dtype([(c.name, _DTYPES[c.dtype]) for c in columns])


def _split(table: np.ndarray, columns: Sequence[Column]) -> dict[str, np.ndarray]:
    """Each column of a table of records as its own contiguous, native-endian array."""
    return {c.name: np.ascontiguousarray(table[c.name], _DTYPES[c.dtype].newbyteorder("="))
            for c in columns}


def _read_header(path: str | Path, data: bytes) -> tuple[list[Column], dict[str, Any], int]:
    if len(data) < _HEAD.size or data[:len(MAGIC)] != MAGIC:
        raise RecordingError(f"{path}: not a hil recording (no {MAGIC!r} magic)")
    _, version, length = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise RecordingError(f"{path}: recording format version {version}; this reader "
                             f"reads version {FORMAT_VERSION}")
    end = _HEAD.size + length
    if len(data) < end + _CRC.size:
        raise RecordingError(f"{path}: header cut short ({len(data)} bytes)")
    text = data[_HEAD.size:end]
    if _CRC.unpack_from(data, end)[0] != zlib.crc32(text):
        raise RecordingError(f"{path}: header fails its CRC32")
    try:
        header = json.loads(text)
        # Fields a newer writer may add are skipped; a recording without `label` (before
        # it existed) reads with the name as its label.
        columns = [Column(**{k: v for k, v in c.items() if k in _COLUMN_FIELDS})
                   for c in header["columns"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordingError(f"{path}: unreadable header: {exc}") from None
    return columns, header.get("meta", {}), end + _CRC.size

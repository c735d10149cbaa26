"""Run recording: rows from a real-time loop to an append-only chunked file, off the loop.

The loop calls `Recorder.record(row)` once per step: it packs the row (little-endian
int64/float64 fields) straight into a preallocated ring of `capacity` rows, O(1), never
blocking, never raising; a full ring drops the row and counts it, a row of the wrong length
or type is counted as rejected. A writer thread wakes every `flush_interval_s`, copies the
packed rows out as one chunk (row after row, with a CRC32) and hands it to the kernel with
one `os.write`. Packing in the loop, ~1 us a row spread over the steps, keeps the writer's
own Python short: the writer holds the interpreter lock for a copy and a header, not for
packing a whole flush of rows, which (~0.2 ms a flush at 5 kHz) held the loop off the lock
and cost deadlines (benchmarks/bench_shm.py, docs/shm.md). Once
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

import contextlib
import json
import mmap
import os
import platform
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from hil.config import RecordConfig
from hil.recording import ringwriter
from hil.runtime.child import PidProcess

if TYPE_CHECKING:  # (hil.dynamics imports numba: ~0.3 s that a reader of recordings skips)
    from hil.dynamics.inputs import Inputs

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
    "input_columns",
    "input_names_of",
    "plant_columns",
    "read_recording",
]

MAGIC = b"HILREC\r\n"
FORMAT_VERSION = 1
CHUNK_MAGIC = ringwriter.CHUNK_MAGIC
END_MAGIC = ringwriter.END_MAGIC
# File header: magic, format version, length of the JSON description that follows.
_HEAD = struct.Struct("<8sHI")
_CRC = struct.Struct("<I")
# Chunk header: magic, chunk index, row count, rows dropped so far, CRC32 of the header's
# first four fields followed by the payload.
_CHUNK = ringwriter.CHUNK
_CHUNK_CRC_SPAN = ringwriter.CHUNK_CRC_SPAN
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
    name the column is read by ("" means the name is the label): recordings of one input
    written before several inputs called it `force_n`, labelled with the input's own name
    ("voltage" for the rotary) and in its own unit. `is_input` marks a column holding one of
    the plant's inputs; the file's header lists them in its meta (`input_columns`).
    """

    name: str
    unit: str = ""
    dtype: str = "f8"
    label: str = ""
    is_input: bool = False

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


class _WriterSettings(TypedDict):
    """What the writer is told (ringwriter.py's settings; JSON to a writer process)."""

    slots: int
    row_size: int
    max_rows: int
    fsync_interval_s: float
    flush_interval_s: float


def _check_settings(columns: Sequence[Column], *, capacity: int, flush_interval_s: float,
                    fsync_interval_s: float, max_rows_per_chunk: int, writer: str) -> None:
    """ValueError naming the first setting of a `Recorder` out of its range, and its value."""
    if not columns:
        raise ValueError("columns must name at least one column, got none")
    names = [c.name for c in columns]
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
    if writer not in ("auto", "process", "thread"):
        raise ValueError(f"writer must be 'auto', 'process' or 'thread', got {writer!r}")


def _file_header(columns: Sequence[Column], meta: Mapping[str, Any] | None) -> bytes:
    """The file's header: magic, format version, the JSON description and its CRC32. The
    input columns, in order, go into the meta as `input_columns`."""
    inputs = [c.name for c in columns if c.is_input]
    header = json.dumps({
        "columns": [{k: getattr(c, k) for k in _COLUMN_FIELDS} for c in columns],
        "meta": {**(meta or {}), **({"input_columns": inputs} if inputs else {})},
        "created_unix_s": time.time(),
    }, allow_nan=False).encode()
    return (_HEAD.pack(MAGIC, FORMAT_VERSION, len(header)) + header
            + _CRC.pack(zlib.crc32(header)))


class Recorder:
    """Record rows of `columns` into `path` from one loop thread; a writer process (or, where
    the ring cannot be shared between processes, a writer thread: `writer="thread"`) writes
    them out (hil/recording/ringwriter.py).

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
        writer: str = "auto",
    ) -> None:
        self.columns = tuple(_as_column(c) for c in columns)
        _check_settings(self.columns, capacity=capacity, flush_interval_s=flush_interval_s,
                        fsync_interval_s=fsync_interval_s,
                        max_rows_per_chunk=max_rows_per_chunk, writer=writer)
        self.path = Path(path)
        self._row = struct.Struct("<" + "".join(_CODES[c.dtype] for c in self.columns))
        self._pack_into = self._row.pack_into
        self._size = self._row.size
        self._slots = capacity
        self._capacity = capacity  # 0 once closed: rows are refused
        self._w = 0  # rows packed so far (the loop's copy of the ring's word W)
        self._dropped = 0
        self._rejected = 0
        self._closed = False
        self._died: str | None = None  # how a writer that ended badly ended
        self._proc: PidProcess | None = None
        self._thread: threading.Thread | None = None
        use_process = writer == "process" or (writer == "auto" and _ring_shares())
        self._open(_file_header(self.columns, meta), use_process, _WriterSettings(
            slots=capacity, row_size=self._size, max_rows=max_rows_per_chunk,
            fsync_interval_s=fsync_interval_s, flush_interval_s=flush_interval_s))
        self.writer = "process" if use_process else "thread"

    def _open(self, header: bytes, use_process: bool, settings: _WriterSettings) -> None:
        """Create the file with its header, map the ring (a memfd a writer process shares,
        else anonymous) and start the writer. If anything fails, each descriptor opened so
        far is closed once, by whoever owns it then (the writer closes what it was handed)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        owned = [fd]  # what a failed start closes: each descriptor once, none the writer has
        ring: mmap.mmap | None = None
        try:
            _write_all(fd, header)
            size = ringwriter.ring_bytes(settings["slots"], self._size)
            self._ring_fd = os.memfd_create("hil-recorder") if use_process else -1
            if use_process:
                owned.append(self._ring_fd)
                os.ftruncate(self._ring_fd, size)
            ring = self._ring = mmap.mmap(self._ring_fd, size)
            self._words = memoryview(self._ring)[:ringwriter.ROWS_AT].cast("Q")
            wake_r, self._wake_w = os.pipe()
            owned += [wake_r, self._wake_w]
            if use_process:
                for handed in (fd, wake_r, self._ring_fd):  # closed there, spawned or not
                    owned.remove(handed)
                self._start_process(settings, fd, wake_r)
            else:
                self._start_thread(settings, fd, wake_r)
                owned.remove(fd)  # the writer thread's now: it closes them when it ends
                owned.remove(wake_r)
        except BaseException:
            for own in owned:
                os.close(own)
            if ring is not None:
                self._words.release()
                ring.close()
            raise

    def _start_process(self, settings: _WriterSettings, fd: int, wake_r: int) -> None:
        """Start the writer process; the loop does not wait for it (rows wait in the ring:
        a controller opens its recorder after the plant's clock has started)."""
        try:
            cfg = {**settings, "ring_fd": self._ring_fd, "file_fd": fd, "wake_fd": wake_r}
            for own in (self._ring_fd, fd, wake_r):  # these three, and no other of ours
                os.set_inheritable(own, True)
            # posix_spawn, not subprocess: the child starts at normal scheduling. A child of
            # a SCHED_FIFO loop inherits its policy and would start its interpreter (~30 ms
            # of CPU) at the loops' priority, which stalled both loops past the watchdog.
            # The loop decides when recording ends: a Ctrl-C to the run's process group is
            # held off (blocked) from the writer's first instruction, not only once its
            # interpreter has started; -S: it needs only the standard library, not site's.
            self._proc = PidProcess(os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", ringwriter.__file__, json.dumps(cfg)],
                os.environ, scheduler=(os.SCHED_OTHER, os.sched_param(0)),
                setsigmask=(signal.SIGINT, signal.SIGTERM)), "recorder writer")
        finally:
            for own in (wake_r, fd, self._ring_fd):
                os.close(own)
            self._ring_fd = -1

    def _start_thread(self, settings: _WriterSettings, fd: int, wake_r: int) -> None:
        ring_writer = ringwriter.RingWriter(
            self._ring, settings["slots"], settings["row_size"], fd,
            max_rows=settings["max_rows"], fsync_interval_s=settings["fsync_interval_s"])

        def run() -> None:
            try:
                ring_writer.run(wake_r, settings["flush_interval_s"])
            except BaseException as exc:  # a bug: say so; close() counts what was lost
                ring_writer.error(f"writer thread died: {type(exc).__name__}: {exc}")
                raise
            finally:
                os.close(fd)
                os.close(wake_r)

        self._thread = threading.Thread(target=run, name=f"recorder:{self.path.name}",
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
        words = self._words
        if w - words[_R] >= self._capacity:
            self._dropped += 1
            words[_DROPPED] = self._dropped
            return
        try:
            self._pack_into(self._ring, _ROWS_AT + (w % self._slots) * self._size, *row)
        except Exception:  # wrong length or type, or not a sequence at all
            self._rejected += 1
            return
        self._w = w + 1
        words[_W] = w + 1  # after the row's bytes: the writer may take it from now on

    def close(self) -> RecorderStatistics:
        """Write what is recorded, mark the file complete, fsync it, and stop the writer."""
        if not self._closed:
            self._closed = True
            self._capacity = 0  # rows recorded from now on are dropped and counted
            with contextlib.suppress(OSError):  # a writer that is gone cannot read it
                os.write(self._wake_w, b"c")
            os.close(self._wake_w)
            if self._proc is not None:
                try:
                    code = self._proc.wait(_WRITER_CLOSE_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    code = self._proc.wait()
                    self._died = (f"writer process did not finish within "
                                  f"{_WRITER_CLOSE_S:g} s: killed")
                if code and self._died is None:
                    self._died = f"writer process died: {_exit_text(code)}"
            elif self._thread is not None:
                self._thread.join()
            words = self._words
            left = words[_W] - words[_R]  # rows a writer that died never took
            if left:
                words[_LOST] += left
                words[_R] = words[_W]
        return self.statistics()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> RecorderStatistics:
        words = self._words
        n = words[_ERROR_LEN]
        error = bytes(self._ring[ringwriter.ERROR_AT:ringwriter.ERROR_AT + n]).decode(
            "utf-8", "replace") if n else None
        return RecorderStatistics(
            rows_written=words[_WRITTEN],
            rows_dropped=self._dropped + words[_LOST],
            rows_rejected=self._rejected,
            chunks_written=words[_CHUNKS],
            bytes_written=words[_BYTES],
            max_queue_depth=words[_MAX_DEPTH],
            fsyncs=words[_FSYNCS],
            error=error or self._died,
        )


_W, _R, _DROPPED = ringwriter.W, ringwriter.R, ringwriter.DROPPED
_WRITTEN, _LOST, _CHUNKS, _BYTES = (ringwriter.WRITTEN, ringwriter.LOST, ringwriter.CHUNKS,
                                    ringwriter.BYTES)
_MAX_DEPTH, _FSYNCS, _ERROR_LEN = ringwriter.MAX_DEPTH, ringwriter.FSYNCS, ringwriter.ERROR_LEN
_ROWS_AT = ringwriter.ROWS_AT
_WRITER_CLOSE_S = 120.0  # the last rows and an fsync on a slow disk


def _ring_shares() -> bool:
    """Can the ring be shared with a writer process? Its single-producer single-consumer
    protocol relies on x86-64's store order between processes; Linux's memfd for the
    mapping."""
    return (sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")
            and hasattr(os, "memfd_create") and hasattr(os, "posix_spawn"))


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _state_columns(names: Sequence[str], units: Sequence[str]) -> list[Column]:
    if len(names) != len(units):
        raise ValueError(f"state_units must give one unit per state name: {len(names)} names "
                         f"{list(names)!r}, {len(units)} units")
    return [Column(n, u) for n, u in zip(names, units, strict=True)]


INPUT_COLUMN = "force_n"  # the one input of a recording written before several inputs

_PLANT_HEAD = (Column("seq", "", "i8"), Column("t_ns", "ns", "i8"), Column("sim_time_s", "s"))
_PLANT_TAIL = (Column("flags", "", "i8"), Column("lateness_ns", "ns", "i8"),
               Column("control_seq", "", "i8"), Column("answered_seq", "", "i8"),
               Column("round_trip_ns", "ns", "i8"))
_CONTROLLER_HEAD = (Column("control_seq", "", "i8"), Column("state_seq", "", "i8"),
                    Column("state_t_ns", "ns", "i8"), Column("rx_ns", "ns", "i8"),
                    Column("send_ns", "ns", "i8"), Column("compute_ns", "ns", "i8"),
                    Column("lateness_ns", "ns", "i8"))
_CONTROLLER_TAIL = (Column("sigma"), Column("mass_condition"))


def input_columns(inputs: Inputs) -> list[Column]:
    """One column per input of the plant, in input order, named and united as it says."""
    return [Column(name, unit, "f8", "", True)
            for name, unit in zip(inputs.names, inputs.units, strict=True)]


def input_column(input_name: str = "force", input_unit: str = "N") -> Column:
    """The one input of a plant described with the legacy keys (`input_name`, `input_unit`):
    the column `force_n`, labelled with the input's name, in its unit, as recordings were
    written before several inputs (readers know it by its name)."""
    if not input_name:
        raise ValueError("input_name must be non-empty (the plant description's input_name)")
    return Column(INPUT_COLUMN, input_unit, "f8", input_name)


def _signal_columns(file: str, state_names: Sequence[str], state_units: Sequence[str],
                    inputs: Inputs | str | None, input_unit: str | None,
                    input_name: str | None, fixed: Sequence[Column]) -> list[Column]:
    """The state columns then the input columns; ValueError naming both sides of a clash
    between an input and a state or one of `file`'s fixed columns."""
    states = _state_columns(state_names, state_units)
    if inputs is None or isinstance(inputs, str):  # the legacy keywords, or their defaults
        name = input_name or inputs or "force"
        return [*states, input_column(name, input_unit or "N")]
    taken = {c.name: f"the fixed column {c.name!r} of {file}" for c in fixed}
    taken.update({c.name: f"the state {c.name!r}" for c in states})
    for name in inputs.names:
        if name in taken:
            state = " or the state" if taken[name].startswith("the state") else ""
            raise ValueError(f"the input {name!r} has the name of {taken[name]}: a recording "
                             f"holds one column per name; rename the input (input_names)"
                             f"{state}")
    return [*states, *input_columns(inputs)]


def plant_columns(state_names: Sequence[str], state_units: Sequence[str],
                  inputs: Inputs | str | None = None, input_unit: str | None = None, *,
                  input_name: str | None = None) -> list[Column]:
    """The columns of plant.rec, one row per plant step (docs/recording.md):

        seq, t_ns, sim_time_s, *state, *u, flags, lateness_ns, control_seq, answered_seq,
        round_trip_ns

    with one column per input (`inputs`) named as the plant names it. `input_name` and
    `input_unit` (the legacy description keys, also as the third and fourth positional
    arguments) give the one-input layout of older recordings: a `force_n` column."""
    return [*_PLANT_HEAD, *_signal_columns("plant.rec", state_names, state_units, inputs,
                                           input_unit, input_name,
                                           (*_PLANT_HEAD, *_PLANT_TAIL)),
            *_PLANT_TAIL]


def controller_columns(state_names: Sequence[str], state_units: Sequence[str],
                       inputs: Inputs | str | None = None, input_unit: str | None = None, *,
                       input_name: str | None = None) -> list[Column]:
    """The columns of controller.rec, one row per control sent (docs/recording.md):

        control_seq, state_seq, state_t_ns, rx_ns, send_ns, compute_ns, lateness_ns, *state,
        *u, sigma, mass_condition

    with the inputs as in `plant_columns`."""
    return [*_CONTROLLER_HEAD,
            *_signal_columns("controller.rec", state_names, state_units, inputs, input_unit,
                             input_name, (*_CONTROLLER_HEAD, *_CONTROLLER_TAIL)),
            *_CONTROLLER_TAIL]


_write_all = ringwriter.write_all


class Recording(dict[str, np.ndarray]):
    """A recording read back: column name -> array, plus what the file said about itself.

    `inputs` names the input columns in input order (the header's `input_columns`; `force_n`
    in a recording written before several inputs) and `states` the state columns (those just
    before the inputs). `units` maps each column to its unit and `labels` to the name a
    person sees (an old recording's `force_n` is labelled with the plant's input name);
    `meta` is what the writer stored; `dropped` is the writer's count of dropped rows as of
    its last intact chunk; `complete` is True when the writer closed the file;
    `truncated_bytes` counts the bytes after the last intact chunk, ignored, and `problem`
    says why they were (None when there were none).
    """

    def __init__(self, columns: Sequence[Column], data: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any], *, version: int, chunks: int, dropped: int,
                 complete: bool, truncated_bytes: int, problem: str | None) -> None:
        super().__init__(data)
        self.columns = tuple(_marked(_labelled_input(columns, meta), meta))
        self.inputs = tuple(c.name for c in self.columns if c.is_input)
        self.states = _states_before(self.columns, self.inputs)
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

    def input_matrix(self) -> np.ndarray:
        """The inputs as one array, a row per recorded row and a column per input."""
        return np.column_stack([self[c] for c in self.inputs]) if self.inputs \
            else np.empty((self.rows, 0))


def input_names_of(columns: Sequence[Column], meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The input columns of a recording, in order: its header's `input_columns` (each a
    column), else `force_n` (a recording written before several inputs), else none."""
    names = [c.name for c in columns]
    listed = meta.get("input_columns")
    if isinstance(listed, list) and listed and all(n in names for n in listed):
        return tuple(listed)
    return (INPUT_COLUMN,) if INPUT_COLUMN in names else ()


def _marked(columns: Sequence[Column], meta: Mapping[str, Any]) -> list[Column]:
    inputs = input_names_of(columns, meta)
    return [Column(c.name, c.unit, c.dtype, c.label, c.name in inputs) for c in columns]


def _states_before(columns: Sequence[Column], inputs: Sequence[str]) -> tuple[str, ...]:
    """The state columns: the float columns just before the first input, back to the run
    time (plant.rec) or to an integer column (controller.rec)."""
    names = [c.name for c in columns]
    if not inputs:
        return ()
    first = names.index(inputs[0])
    start = first
    while start > 0 and columns[start - 1].dtype == "f8" \
            and columns[start - 1].name != "sim_time_s":
        start -= 1
    return tuple(names[start:first])


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
        self.inputs: tuple[str, ...] = ()  # as Recording's, once the header is read
        self.states: tuple[str, ...] = ()
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
                    self.columns = tuple(_marked(_labelled_input(columns, self.meta),
                                                 self.meta))
                    self.inputs = tuple(c.name for c in self.columns if c.is_input)
                    self.states = _states_before(self.columns, self.inputs)
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

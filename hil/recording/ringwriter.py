"""The recorder's writer, out of the loop's process: a ring of packed rows in shared memory.

`Recorder.record()` packs each row into a ring in a shared mapping and publishes its count;
this module's writer copies the packed rows out as chunks and appends them to the file
(docs/recording.md). It runs in a process of its own (`python ringwriter.py`, standard
library only, started at normal scheduling by the recorder), so the real-time loop's process
has one Python thread and its interpreter lock is never wanted by anyone else: a writer
thread in the loop's process, waking once a flush interval, cost the loop about half of its
deadline misses at 5 kHz (docs/shm.md). Where the ring cannot be
shared this way (a CPU whose stores may be seen out of order by another process: not
x86-64) the same writer runs on a thread of the loop's process instead.

The mapping (a file in /dev/shm, unlinked as soon as both sides have it open):

| u64 word | owner  | meaning                                                            |
|----------|--------|--------------------------------------------------------------------|
| 0        | loop   | rows packed so far (w); a row's bytes are stored before w moves    |
| 1        | writer | rows taken out so far (r); slots before it are free for the loop   |
| 2        | loop   | rows the loop dropped (ring full, closed): the chunk headers say it |
| 3..8     | writer | rows written, rows lost, chunks, bytes, max depth, fsyncs          |
| 9        | writer | length of the error text at byte 128 (UTF-8, at most 512 bytes)    |

The rows start at byte 1024: `slots` rows of `row_size` bytes, row number n at slot
n % slots. Each word has one writer; x86-64 keeps one process's stores in order for another
(TSO), which is all a single-producer single-consumer ring needs.

The writer wakes every flush interval, when the loop closes the recorder (a byte on a pipe)
or when the loop's process dies (the pipe's end of file): then it writes what is left, and
only after a close the end marker, so a killed loop's recording keeps every row it recorded
and still reads as not closed.
"""

from __future__ import annotations

import json
import mmap
import os
import select
import signal
import struct
import sys
import time
import zlib
from typing import Any

W, R, DROPPED, WRITTEN, LOST, CHUNKS, BYTES, MAX_DEPTH, FSYNCS, ERROR_LEN = range(10)
ERROR_AT = 128
ERROR_MAX = 512
ROWS_AT = 1024

CHUNK_MAGIC = b"HRCK"
END_MAGIC = b"HREN"
# Chunk header: magic, chunk index, row count, rows dropped so far, CRC32 of the header's
# first four fields followed by the payload.
CHUNK = struct.Struct("<4sIIQI")
CHUNK_CRC_SPAN = CHUNK.size - 4
CRC = struct.Struct("<I")


def ring_bytes(slots: int, row_size: int) -> int:
    return ROWS_AT + slots * row_size


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class RingWriter:
    """Copies rows out of the ring into the file open at `fd`, chunk by chunk."""

    def __init__(self, ring: mmap.mmap, slots: int, row_size: int, fd: int, *,
                 max_rows: int, fsync_interval_s: float) -> None:
        self.ring = ring
        self.view = memoryview(ring)
        self.words = self.view[:ROWS_AT].cast("Q")
        self.slots, self.size, self.fd = slots, row_size, fd
        self.max_rows = max_rows
        self.fsync_interval_s = fsync_interval_s
        self.next_fsync = time.monotonic() + fsync_interval_s
        self.failed = False

    def error(self, text: str) -> None:
        """Keep the first error; once failed, rows are taken out and counted as lost."""
        if self.words[ERROR_LEN]:
            return
        data = text.encode("utf-8", "replace")[:ERROR_MAX]
        self.view[ERROR_AT:ERROR_AT + len(data)] = data
        self.words[ERROR_LEN] = len(data)
        self.failed = True

    def flush(self) -> None:
        words = self.words
        r = words[R]
        depth = words[W] - r
        words[MAX_DEPTH] = max(words[MAX_DEPTH], depth)
        while depth:
            n = min(depth, self.max_rows)
            payload = b"" if self.failed else self._take(r, n)
            r += n
            words[R] = r  # the slots are free for the loop again
            depth -= n
            if self.failed:
                words[LOST] += n
                continue
            try:
                self.chunk(CHUNK_MAGIC, payload, n)
            except OSError as exc:
                self.error(f"{type(exc).__name__}: {exc}")
                words[LOST] += n
                continue
            except BaseException:  # the writer dies of it: the chunk is lost, and counted
                words[LOST] += n
                raise
            words[WRITTEN] += n

    def _take(self, r: int, n: int) -> bytes:
        size, slots = self.size, self.slots
        start = ROWS_AT + (r % slots) * size
        end = start + n * size
        stop = ROWS_AT + slots * size
        if end <= stop:
            return bytes(self.view[start:end])
        return bytes(self.view[start:stop]) + bytes(self.view[ROWS_AT:end - slots * size])

    def chunk(self, magic: bytes, payload: bytes, rows: int) -> None:
        words = self.words
        dropped = words[DROPPED] + words[LOST]
        head = CHUNK.pack(magic, words[CHUNKS], rows, dropped, 0)[:CHUNK_CRC_SPAN]
        crc = zlib.crc32(payload, zlib.crc32(head))
        write_all(self.fd, head + CRC.pack(crc) + payload)
        words[CHUNKS] += 1
        words[BYTES] += CHUNK.size + len(payload)

    def fsync(self, due_only: bool = True) -> None:
        if due_only and not (self.fsync_interval_s and time.monotonic() >= self.next_fsync):
            return
        self.next_fsync = time.monotonic() + self.fsync_interval_s
        try:
            os.fsync(self.fd)
            self.words[FSYNCS] += 1
        except OSError as exc:
            self.error(f"fsync: {type(exc).__name__}: {exc}")

    def run(self, wake_fd: int, flush_interval_s: float) -> None:
        """Until the loop closes (a byte on `wake_fd`: end marker) or dies (end of file:
        no end marker): flush every interval and at the end, fsync as configured."""
        closed = False
        while True:
            ready, _, _ = select.select([wake_fd], [], [], flush_interval_s)
            ended = False
            if ready:
                data = os.read(wake_fd, 1)
                closed, ended = bool(data), True
            self.flush()
            if ended:
                break
            self.fsync()
        if closed and not self.failed:
            try:
                self.chunk(END_MAGIC, b"", 0)
            except OSError as exc:  # the file reads as torn: not closed
                self.error(f"{type(exc).__name__}: {exc}")
        self.fsync(due_only=False)


def main(argv: list[str]) -> int:
    """The writer process: `ringwriter.py CONFIG_JSON`; the ring, the file and the wake pipe
    are inherited file descriptors named in the config."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the loop decides when recording ends
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit is an error, not death
    cfg: dict[str, Any] = json.loads(argv[1])
    ring = mmap.mmap(cfg["ring_fd"], ring_bytes(cfg["slots"], cfg["row_size"]))
    os.close(cfg["ring_fd"])
    writer = RingWriter(ring, cfg["slots"], cfg["row_size"], cfg["file_fd"],
                        max_rows=cfg["max_rows"], fsync_interval_s=cfg["fsync_interval_s"])
    try:
        writer.run(cfg["wake_fd"], cfg["flush_interval_s"])
    except BaseException as exc:  # a bug: say so; the loop counts what was not written
        writer.error(f"writer process died: {type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The serial bridge's port I/O: whole frames out without waiting, chunks of bytes in.

`FrameWriter` is the transmit side: it encodes a message and writes the whole frame, or
drops it whole, and never waits on the line (the rig wants the newest CONTROL; a late one
is worth nothing). `read_chunk` is the receive side's one read. Neither knows the protocol's
meaning; the bridge (plant_server/backends/serial.py) does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import serial

from firmware_protocol import Encoder, Message

BITS_PER_BYTE = 10  # 8N1
# A frame is dropped (whole, counted) rather than queued behind this many frames' worth of
# bytes still waiting in the UART's transmit buffer.
TX_QUEUE_FRAMES = 4
TX_COUNTERS = ("frames_tx", "bytes_tx", "tx_overflow_bytes", "tx_dropped_frames",
               "tx_truncated_frames")


def wire_ns(n_bytes: int, baud: int) -> int:
    """Time for `n_bytes` to cross a UART at `baud`, 8N1 (10 bit times a byte), in ns."""
    return n_bytes * BITS_PER_BYTE * 1_000_000_000 // baud


def read_chunk(ser: serial.Serial) -> bytes:
    """Block up to the port's read timeout for a byte, then take everything waiting."""
    first: bytes = ser.read(1)
    if not first:
        return b""
    waiting = ser.in_waiting
    return first + ser.read(waiting) if waiting else first


class FrameWriter:
    """Writes frames to the rig on `ser` (named `port`) from any thread, one at a time.

    `send` encodes and writes a frame; `write` writes raw bytes (the opening delimiter).
    Both return True if everything went out, False if it was dropped or cut (counted in
    `counters`) or the port failed: then `on_gone` has been told why (naming the port), when
    (on `clock`), and that no ESTOP can reach the rig (False). `last_tx_ns` is when bytes
    last went out.
    """

    def __init__(self, ser: serial.Serial, port: str, queue_limit_bytes: int, *,
                 on_gone: Callable[[str, int, bool], None], clock: Callable[[], int]) -> None:
        self._ser = ser
        self._port = port
        self._queue_limit_bytes = queue_limit_bytes
        self._on_gone = on_gone
        self._clock = clock
        self._encoder = Encoder()
        self._lock = threading.RLock()  # on_gone runs under it
        self._cut = False  # the last frame went out in part: end it before the next
        self.last_tx_ns = 0
        self.counters = dict.fromkeys(TX_COUNTERS, 0)

    def send(self, message: Message) -> bool:
        """Encode `message` with the next sequence number and write it whole, or drop it."""
        with self._lock:
            if not self.write(self._encoder.encode(message)):
                return False
            self.counters["frames_tx"] += 1
            return True

    def write(self, data: bytes) -> bool:
        """Write `data` without waiting, or drop it whole; True if it all went out.

        Dropped (counted in `tx_dropped_frames`) when the transmit buffer already holds
        `queue_limit_bytes` (`out_waiting`, a real UART) or takes none (EAGAIN: a
        pseudo-terminal's buffer is full). If the kernel takes only part of it
        (`tx_truncated_frames`), the next write starts with a delimiter, so the rig rejects
        the cut frame alone and the next one arrives whole. (pyserial's own write with
        write_timeout=0 spins on EAGAIN inside the write lock.)"""
        if self._cut:
            data = b"\x00" + data
        try:
            if self._ser.out_waiting + len(data) > self._queue_limit_bytes:
                written = 0
            else:
                written = os.write(self._ser.fileno(), data)
        except BlockingIOError:
            written = 0
        except (serial.SerialException, OSError) as exc:
            self._on_gone(f"rig on {self._port} unplugged or gone: write failed: {exc}",
                          self._clock(), False)
            return False
        counters = self.counters
        if written == 0:
            counters["tx_dropped_frames"] += 1
            counters["tx_overflow_bytes"] += len(data)
            return False
        self._cut = written < len(data)
        self.last_tx_ns = self._clock()
        counters["bytes_tx"] += written
        if self._cut:
            counters["tx_truncated_frames"] += 1
            counters["tx_overflow_bytes"] += len(data) - written
            return False
        return True

"""The serial bridge's reader thread: it owns the port's receive side.

It reads whatever the rig sent as it arrives (blocking up to the port's read timeout) and
hands each chunk, with the host time it was read, to `on_chunk`; an empty chunk after each
quiet read timeout, so the bridge can watch the link and keep it alive. A read that fails
(the rig unplugged) or the thread dying of anything goes to `on_fault`: a run must never go
on with nobody reading the rig.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import serial

from plant_server.backends.serial_io import read_chunk

_JOIN_S = 1.0


class RigReader:
    """Reads the rig on `ser` (named `port`) on its own thread, from `start()` to `stop()`.

    `on_start` runs first thing in the thread (e.g. its real-time scheduling); `on_fault`
    takes a reason naming the port, the host time, and whether the port may still carry an
    ESTOP (not after a failed read).
    """

    def __init__(self, ser: serial.Serial, port: str, *,
                 on_chunk: Callable[[bytes, int], None],
                 on_fault: Callable[[str, int, bool], None],
                 on_start: Callable[[], object] | None = None, log: Any = None,
                 clock: Callable[[], int]) -> None:
        self._ser = ser
        self._port = port
        self._on_chunk = on_chunk
        self._on_fault = on_fault
        self._on_start = on_start
        self._log = log
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"serial-reader {port}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread (a blocked read is cancelled) and wait for it, up to a second."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self._ser.cancel_read()
        if self._thread.is_alive():
            self._thread.join(timeout=_JOIN_S)

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        except Exception as exc:
            if self._log is not None:  # with its traceback
                self._log.exception("serial reader thread died", port=self._port)
            self._on_fault(f"serial reader of the rig on {self._port} died: "
                           f"{type(exc).__name__}: {exc}", self._clock(), True)

    def _read_until_stopped(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while not self._stop.is_set():
            try:
                data = read_chunk(self._ser)
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial reading a port closed under it
                if not self._stop.is_set():
                    self._on_fault(f"rig on {self._port} unplugged or gone: read failed: "
                                   f"{exc}", self._clock(), False)
                return
            self._on_chunk(data, self._clock())

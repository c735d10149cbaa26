"""Helpers for the rig tests: an emulated rig in its own process, and a raw host link to it.

`EmulatedRig` starts `python -m plant_server.rig_emulator` (or `hil rig-emulator`) on a real
pseudo-terminal and waits for its link; `RawHost` speaks the protocol to it with pyserial
and `firmware_protocol` alone, so the emulator is checked without the plant's bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import serial
import yaml

from firmware_protocol import Decoder, Encoder, Event, Frame, Message

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 20.0


def rig_config(tmp_path: Path, *, rate_hz: int = 100, baud: int = 115_200,
               name: str = "rig.yaml", **rig: Any) -> Path:
    """A config file for an emulated DIP rig; `rig` sets rig_emulator keys."""
    data = {
        "run": {"rate_hz": rate_hz},
        "plant": {"backend": "serial", "model": "dip"},
        "serial": {"baud": baud},
        "rig_emulator": {"enabled": True, **rig},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


class EmulatedRig:
    """The emulator as a process; `stop()` ends it and returns its rig.json."""

    def __init__(self, config: Path, out: Path, via_hil: bool = False) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.link = out / "rig.pty"
        head = [str(BIN / "hil"), "rig-emulator"] if via_hil else [
            sys.executable, "-m", "plant_server.rig_emulator"]
        self.proc = subprocess.Popen(
            [*head, "--config", str(config), "--out", str(out), "--link", str(self.link)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        give_up = time.monotonic() + READY_TIMEOUT_S
        while not self.link.is_symlink():
            if self.proc.poll() is not None:
                raise AssertionError(f"emulator exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            assert time.monotonic() < give_up, "emulator not ready in time"
            time.sleep(0.01)
        self.port = str(self.link)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(0.1)  # let it act on what is still on the line (ESTOPs at close)
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return json.loads((self.out / "rig.json").read_text())

    def __enter__(self) -> EmulatedRig:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class RawHost:
    """A host side built from pyserial and firmware_protocol only."""

    def __init__(self, port: str, baud: int = 115_200) -> None:
        self.ser = serial.Serial(port, baud, timeout=0.005, write_timeout=0)
        self.decoder = Decoder()
        self.encoder = Encoder()
        self.ser.write(b"\x00")

    def send(self, message: Message) -> int:
        """Send with the next seq; returns the time it was written (monotonic ns)."""
        self.ser.write(self.encoder.encode(message))
        return time.monotonic_ns()

    def send_raw(self, frame: bytes) -> int:
        self.ser.write(frame)
        return time.monotonic_ns()

    def events(self, duration_s: float) -> list[tuple[int, Event]]:
        """Everything decoded within `duration_s`, with its arrival time."""
        got: list[tuple[int, Event]] = []
        give_up = time.monotonic() + duration_s
        while time.monotonic() < give_up:
            got += self._poll()
        return got

    def wait_for(self, kind: type, timeout_s: float = 2.0, flags: int | None = None,
                 seen: list[tuple[int, Event]] | None = None) -> tuple[int, Frame]:
        """The first frame of message type `kind` (whose flags include `flags`)."""
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            for t, event in self._poll():
                if seen is not None:
                    seen.append((t, event))
                if (isinstance(event, Frame) and isinstance(event.message, kind)
                        and (flags is None or event.flags & flags == flags)):
                    return t, event
        raise AssertionError(f"no {kind.__name__} (flags {flags}) within {timeout_s} s")

    def _poll(self) -> list[tuple[int, Event]]:
        data = self.ser.read(1)
        if not data:
            return []
        t = time.monotonic_ns()
        waiting = self.ser.in_waiting
        if waiting:
            data += self.ser.read(waiting)
        self.decoder.feed(data)
        return [(t, event) for event in self.decoder]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ser.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

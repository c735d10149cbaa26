"""Helpers for the rig tests: a rig in its own process, and a raw host link to it.

`PtyRig` is any rig process that opens a real pseudo-terminal and links it at
`OUT/rig.pty`, then writes `OUT/rig.json` when interrupted: `EmulatedRig` here (`python -m
plant_server.rig_emulator` or `hil rig-emulator`), the C firmware's host build in
tests/firmware_protocol/fw_kit.py and `plant_server.firmware_rig` in the serial backend's
tests. `RawHost` speaks the protocol to any of them with pyserial and `firmware_protocol`
alone, so a rig is checked without the plant's bridge. (On pytest's pythonpath: tests/hil.)
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
from typing import Any, Self

import serial
import yaml

from firmware_protocol import Capabilities, Decoder, Encoder, Event, Frame, Hello, Message

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 20.0


# A lab's plant of nine states: one more than a rig's STATE frame carries.
NINE_STATES = '''
class Chain:
    state_names = tuple(f"x{i}" for i in range(9))
    state_units = ("m",) * 9
    input_names = ("push",)
    input_units = ("N",)
    input_limits = (5.0,)

    def derivatives(self, state, u):
        return [0.0] * 9
'''


def rig_config(tmp_path: Path, *, rate_hz: int = 100, baud: int = 115_200,
               name: str = "rig.yaml", plant: dict[str, Any] | None = None,
               **rig: Any) -> Path:
    """A config file for an emulated rig, the DIP unless `plant` says otherwise (plant
    keys, e.g. {"model": "helicopter", "initial_state": [...]}); `rig` sets rig_emulator
    keys."""
    data = {
        "run": {"rate_hz": rate_hz},
        "plant": {"backend": "serial", "model": "dip", **(plant or {})},
        "serial": {"baud": baud},
        "rig_emulator": {"enabled": True, **rig},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


class PtyRig:
    """A rig process on a pseudo-terminal linked at `out/rig.pty`; `stop()` ends it (SIGINT)
    and returns its rig.json. A subclass builds its command line and calls `_start`."""

    name = "rig"
    # How long `stop()` lets the rig, woken first (SIGCONT), act on what is still on the line
    # (the ESTOPs of a closing bridge) before it interrupts it; 0: at once.
    settle_s = 0.0

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.link = out / "rig.pty"

    def _start(self, command: list[str], ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start `command`; return once its pseudo-terminal is linked (AssertionError with its
        stderr if it exits first, or if no link appears within `ready_timeout_s`)."""
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        give_up = time.monotonic() + ready_timeout_s
        while not self.link.is_symlink():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            assert time.monotonic() < give_up, (
                f"{self.name}: no pseudo-terminal at {self.link} within {ready_timeout_s} s")
            time.sleep(0.01)
        self.port = str(self.link)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            if self.settle_s > 0:
                self.proc.send_signal(signal.SIGCONT)
                time.sleep(self.settle_s)
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        report: dict[str, Any] = json.loads((self.out / "rig.json").read_text())
        return report

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class EmulatedRig(PtyRig):
    """The Python emulator (`python -m plant_server.rig_emulator`, or `hil rig-emulator`)."""

    name = "emulator"
    settle_s = 0.1

    def __init__(self, config: Path, out: Path, via_hil: bool = False) -> None:
        super().__init__(out)
        head = [str(BIN / "hil"), "rig-emulator"] if via_hil else [
            sys.executable, "-m", "plant_server.rig_emulator"]
        self._start([*head, "--config", str(config), "--out", str(out),
                     "--link", str(self.link)])


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
        try:
            waiting = self.ser.in_waiting
        except OSError as exc:  # EIO: the far end closed between read() and the ioctl
            raise serial.SerialException(f"the port is gone: {exc}") from exc
        if waiting:
            data += self.ser.read(waiting)
        self.decoder.feed(data)
        return [(t, event) for event in self.decoder]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ser.close()


def new_session(port: str, baud: int = 115_200, timeout_s: float = 5.0) -> None:
    """Begin afresh on a rig an earlier test spoke to: HELLO, then read up to the
    CAPABILITIES echoing its nonce. The rig is then disarmed (a HELLO never raises a FAULT,
    so no watchdog trip of the earlier session is still to come), and what it sent before
    is read: the pseudo-terminal keeps what nobody read, and the next host on the port
    hears only what the rig says from the HELLO on (STATEs, unarmed)."""
    nonce = int.from_bytes(os.urandom(4), "little") | 1
    host = RawHost(port, baud)
    try:
        host.send(Hello(nonce=nonce))
        give_up = time.monotonic() + timeout_s
        while True:
            _, caps = host.wait_for(Capabilities, timeout_s=max(give_up - time.monotonic(), 0))
            if caps.message.nonce == nonce:
                return
    finally:
        host.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

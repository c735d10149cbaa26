"""Build and drive the reference rig firmware (firmware_protocol/firmware/) from the tests.

Everything is real: the C core compiled by firmware_protocol/firmware/Makefile (the test
programs under AddressSanitizer and UndefinedBehaviorSanitizer, with -Werror), the host
build on a real pseudo-terminal, the Cortex-M4F image booted in qemu-system-arm with its
UART on a pseudo-terminal. A missing tool fails the test with what to install; nothing
is skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The rig process and raw host of the rig tests (tests/hil/rigkit.py): one for every rig.
from rigkit import PtyRig, RawHost

import firmware_protocol
from firmware_protocol import Decoder, Frame

FIRMWARE = Path(firmware_protocol.__file__).with_name("firmware")
INSTALL = ("apt-get install -y gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm "
           "(or, as root: make -C firmware_protocol/firmware tools)")
BOOT_TIMEOUT_S = 20.0

__all__ = ["FIRMWARE", "FwScript", "HostRig", "QemuRig", "RawHost", "build", "decode_tx",
           "realtime_host"]


@functools.cache
def _build_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="hil-fw-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def build(target: str) -> Path:
    """`make -C firmware_protocol/firmware TARGET` into this session's build folder."""
    tools = {"check-programs": ["cc"], "host": ["cc"], "qemu": ["arm-none-eabi-gcc"],
             "board": ["arm-none-eabi-gcc"]}[target]
    for tool in ["make", *tools]:
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found: the firmware tests need it. Install: {INSTALL}")
    done = subprocess.run(["make", "-C", str(FIRMWARE), target, f"BUILD={_build_dir()}"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"make {target} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return _build_dir()


def decode_tx(lines: list[str]) -> list[Frame]:
    """The frames in `tx HEX` lines, decoded by the Python codec (each must be valid)."""
    decoder = Decoder()
    for line in lines:
        if line.startswith("tx "):
            decoder.feed(bytes.fromhex(line[3:]))
    events = list(decoder)
    assert all(isinstance(e, Frame) for e in events), events
    return [e for e in events if isinstance(e, Frame)]


class FwScript:
    """The core on its scripted HAL (ports/script/fw_script.c), one command at a time."""

    def __init__(self) -> None:
        program = build("check-programs") / "check" / "fw_script"
        self.proc = subprocess.Popen([str(program)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.decoder = Decoder()

    def __call__(self, command: str) -> list[str]:
        """Run one command; its output lines (without the final `end`)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        out: list[str] = []
        while (line := self.proc.stdout.readline()) != "end\n":
            if not line:  # the program died: a sanitizer report is on stderr
                self.proc.wait(timeout=10)
                raise AssertionError(f"fw_script exited {self.proc.returncode} at {command!r}:"
                                     f"\n{self.proc.stderr.read() if self.proc.stderr else ''}")
            out.append(line.rstrip("\n"))
        return out

    def frames(self, command: str) -> list[Frame]:
        """Run a command; the frames the rig sent meanwhile (one decoder for the session)."""
        lines = self(command)
        for line in lines:
            if line.startswith("tx "):
                self.decoder.feed(bytes.fromhex(line[3:]))
        return [e for e in self.decoder if isinstance(e, Frame)]

    def status(self) -> dict[str, float]:
        (line,) = self("status")
        _, flags, armed, motor, command, code, led, commands = line.split()
        return {"flags": int(flags), "armed": int(armed), "motor": int(motor),
                "command": float(command), "code": int(code), "led": int(led),
                "commands": tuple(float(c) for c in commands.split(","))}

    def counters(self) -> dict[str, int]:
        (line,) = self("counters")
        return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=10)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert code == 0 and "runtime error" not in err and "Sanitizer" not in err, err


@contextlib.contextmanager
def fw_script() -> Iterator[FwScript]:
    s = FwScript()
    try:
        yield s
    finally:
        s.close()


class HostRig(PtyRig):
    """The host build on a pseudo-terminal; `stop()` ends it and returns its rig.json."""

    name = "hil-rig-host"

    def __init__(self, out: Path, **settings: object) -> None:
        program = build("host") / "host" / "hil-rig-host"
        super().__init__(out)
        args = [f"{k}={v}" for k, v in {"link": self.link, "out": out, **settings}.items()]
        self._start([str(program), *args], BOOT_TIMEOUT_S)


_PTY = re.compile(r"char device redirected to (/dev/pts/\d+)")


@contextlib.contextmanager
def realtime_host() -> Iterator[None]:
    """This test process at SCHED_FIFO 50 for the block, as hil-plant runs by default: the
    host that feeds the rig's watchdog is then not the one that falls silent under load.
    Where it is refused (not root, no RT budget) the block runs as it is."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class QemuRig:
    """The Cortex-M4F image booted in qemu-system-arm (mps2-an386), UART0 on a pty."""

    def __init__(self, **settings: object) -> None:
        elf = build("qemu") / "qemu" / "hil-rig-qemu.elf"
        qemu = shutil.which("qemu-system-arm")
        if qemu is None:
            pytest.fail(f"`qemu-system-arm` not found: the QEMU firmware tests need it. "
                        f"Install: {INSTALL}")
        args = ",".join(["arg=hil-rig-qemu", *(f"arg={k}={v}".replace(",", ",,")
                                               for k, v in settings.items())])
        self.proc = subprocess.Popen(
            [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "pty",
             "-kernel", str(elf), "-semihosting-config", f"enable=on,target=native,{args}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        give_up = time.monotonic() + BOOT_TIMEOUT_S
        seen = ""
        # the pty exists before the MCU boots: bytes sent before this line would be lost
        while (m := _PTY.search(seen)) is None or "hil-rig-qemu: ready" not in seen:
            if self.proc.poll() is not None:
                raise AssertionError(f"qemu-system-arm exited {self.proc.returncode}: {seen}")
            assert time.monotonic() < give_up, f"qemu: no pseudo-terminal in time: {seen}"
            with contextlib.suppress(BlockingIOError):
                seen += os.read(fd, 4096).decode(errors="replace")
            time.sleep(0.01)
        self.port = m.group(1)
        self.fd = fd
        self.seen = seen

    def output(self) -> str:
        """What QEMU and the firmware (semihosting) wrote so far."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.fd, 65536):
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output()

    def __enter__(self) -> QemuRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

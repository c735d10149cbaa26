"""The C reference firmware as the emulated rig: `rig_emulator.kind: host` or `qemu`.

`python -m plant_server.firmware_rig --config X --out O --link L` is what `hil run` starts
instead of plant_server/rig_emulator.py when `rig_emulator.kind` is not `python`; the
contract is the same (the link appears when the port is ready, SIGINT ends it, rig.json is
left in --out). The firmware itself is firmware_protocol/firmware/ (docs/firmware.md):

- host: the core built for Linux (`hil-rig-host`), on a pseudo-terminal, with the pendulum
  simulated behind its HAL in double precision and every fault knob of the Python emulator
  (corrupt_byte_rate, drop_frame_rate, added_latency_ms, unplug_after_s), paced at
  serial.baud. This process execs it: it writes its own rig.json.
- qemu: the core cross-compiled for the Cortex-M4F of QEMU's mps2-an386, booted in
  qemu-system-arm with UART0 on a pseudo-terminal and the pendulum simulated on the MCU in
  float. QEMU does not pace the UART at the baud rate, and there are no fault knobs.

The settings reach the firmware as key=value arguments (QEMU: its semihosting command line):
run.rate_hz, rig_emulator.watchdog_ms/rig_id/track_limit_m/clock_start_us,
plant.initial_state/substeps/params, serial.baud. The firmware is built with make the first
time (a missing cross-compiler or QEMU is reported with what to install).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import firmware_protocol
from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.app.process import write_json
from hil.config import Config, ConfigError, RealtimeConfig, load_config

FIRMWARE = Path(firmware_protocol.__file__).with_name("firmware")
BUILD = FIRMWARE / "build"
HOST_BIN = BUILD / "host" / "hil-rig-host"
QEMU_ELF = BUILD / "qemu" / "hil-rig-qemu.elf"
QEMU_MACHINE = "mps2-an386"
INSTALL = ("apt-get install -y gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
_PTY = re.compile(rb"char device redirected to (/dev/pts/\d+)")
_READY = b"hil-rig-qemu: ready"
_STALLS = re.compile(r"hil-rig-qemu: stalls (\d+) longest (\d+) us total (\d+) us")
_KNOBS = ("corrupt_byte_rate", "drop_frame_rate", "added_latency_ms")


def firmware_settings(config: Config) -> dict[str, str]:
    """The key=value settings of the firmware's simulated ports, from the config."""
    rate = config.run.rate_hz
    if rate != round(rate) or not 1 <= rate <= 65535:
        raise ConfigError(f"run.rate_hz: the rig streams at a whole number of Hz in 1..65535 "
                          f"(a u16 in CAPABILITIES), got {rate}")
    pc, rc = config.plant, config.rig_emulator
    if pc.model != "dip":
        raise ConfigError(f"rig_emulator.kind {rc.kind}: the C firmware simulates the double "
                          f"pendulum only, plant.model is {pc.model!r} (use kind: python)")
    if len(pc.initial_state) != 6:
        raise ConfigError("plant.initial_state: the double pendulum has 6 states")
    settings = {
        "rate_hz": str(round(rate)), "watchdog_ms": str(rc.watchdog_ms),
        "rig_id": str(rc.rig_id), "track_limit_m": repr(rc.track_limit_m),
        "clock_start_us": str(rc.clock_start_us), "substeps": str(pc.substeps),
        "initial_state": ",".join(repr(float(v)) for v in pc.initial_state),
        "baud": str(config.serial.baud),
    }
    for name, value in pc.params.items():
        settings[name] = repr(float(value))
    return settings


def host_settings(config: Config) -> dict[str, str]:
    rc = config.rig_emulator
    settings = firmware_settings(config)
    settings.update({"seed": str(rc.seed), "corrupt_byte_rate": repr(rc.corrupt_byte_rate),
                     "drop_frame_rate": repr(rc.drop_frame_rate),
                     "added_latency_ms": repr(rc.added_latency_ms),
                     "sched_fifo": str(int(config.realtime.sched_fifo)),
                     "sched_priority": str(config.realtime.sched_priority)})
    if rc.unplug_after_s is not None:
        settings["unplug_after_s"] = repr(rc.unplug_after_s)
    return settings


def build(target: str) -> None:
    """`make -C firmware_protocol/firmware TARGET` (quick when up to date)."""
    if shutil.which("make") is None:
        raise RuntimeError(f"`make` not found; install it (apt-get install -y make) and {INSTALL}")
    done = subprocess.run(["make", "-s", "-C", str(FIRMWARE), target], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the {target} firmware failed ({INSTALL}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")


def qemu_command(settings: dict[str, str]) -> list[str]:
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        raise RuntimeError(f"qemu-system-arm not found: {INSTALL}")
    # QEMU's option syntax: a comma inside a value is written twice
    args = ",".join(["arg=hil-rig-qemu", *(f"arg={k}={v}".replace(",", ",,")
                                           for k, v in settings.items())])
    return [qemu, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "pty",
            "-kernel", str(QEMU_ELF), "-semihosting-config", f"enable=on,target=native,{args}"]


def _link(path: str, link: Path) -> None:
    tmp = link.with_name(link.name + ".tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(path, tmp)
    os.replace(tmp, link)


def stall_figures(output: str) -> dict[str, Any]:
    """The QEMU port's stall reports (ports/qemu/main.c) as rig.json figures: the last
    "stalls N longest L us total T us" line (the port writes one every 200 ms at most, when N
    changed) and its watchdog trip reports."""
    found = _STALLS.findall(output)
    n, longest, total = (int(v) for v in found[-1]) if found else (0, 0, 0)
    return {"stalls": n, "longest_stall_ms": longest / 1e3, "total_stall_ms": total / 1e3,
            "watchdog_trip_reports": [line.split(": ", 1)[1] for line in output.splitlines()
                                      if line.startswith("hil-rig-qemu: watchdog trip")]}


def run_qemu(config: Config, out: Path | None, link: Path | None, ready_s: float) -> int:
    """Boot the image, link its UART's pty, serve until told to stop; write rig.json."""
    settings = qemu_settings(config)
    command = qemu_command(settings)
    stop = _StopRequest()
    parent = os.getppid()
    _ask_fifo(config.realtime)
    qemu = _Qemu(command)
    reason = "crashed"
    try:
        qemu.path = qemu.wait_ready(ready_s)
        if qemu.path is None:
            return EXIT_FAULT
        if link is not None:
            _link(qemu.path, link)
        print(f"rig firmware (qemu {QEMU_MACHINE}) on {qemu.path}"
              + (f" (link {link})" if link else ""), flush=True)
        reason = qemu.serve(stop, parent)
    finally:
        qemu.stop()
        if link is not None:
            link.unlink(missing_ok=True)
        if out is not None:
            write_json(out / "rig.json", qemu.rig_json(settings, reason, link))
    return EXIT_OK


def qemu_settings(config: Config) -> dict[str, str]:
    """The firmware's settings for the QEMU build, which has no fault knobs (ConfigError)."""
    settings = firmware_settings(config)
    rc = config.rig_emulator
    if any(getattr(rc, k) for k in _KNOBS) or rc.unplug_after_s is not None:
        raise ConfigError("rig_emulator.kind qemu has no fault knobs (corrupt_byte_rate, "
                          "drop_frame_rate, added_latency_ms, unplug_after_s): use kind: host")
    return settings


class _StopRequest:
    """Set to "stopped" by SIGINT or SIGTERM, installed as their handler on construction."""

    def __init__(self) -> None:
        self.reason: str | None = None
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.reason = "stopped"


def _ask_fifo(rt: RealtimeConfig) -> None:
    """SCHED_FIFO as the plant and the controller have it: a starved QEMU is a late rig.
    Refused, it says so on stderr and goes on without."""
    if not rt.sched_fifo:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt.sched_priority))
    except OSError as exc:
        print(f"hil rig (qemu): SCHED_FIFO refused ({exc}); running without it",
              file=sys.stderr)


class _Qemu:
    """The qemu-system-arm process: its output read without blocking, kept for rig.json."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.started = time.monotonic()
        self.output: list[str] = []  # what it wrote once the firmware was ready
        self.path: str | None = None  # its UART's pseudo-terminal

    def _read(self) -> bytes:
        with contextlib.suppress(BlockingIOError):
            return os.read(self.fd, 4096)
        return b""

    def wait_ready(self, ready_s: float) -> str | None:
        """The UART's pty once the firmware says it listens (the pty exists before the MCU
        boots); None, said on stderr, if QEMU exits or `ready_s` passes first."""
        seen = b""
        while True:
            seen += self._read()
            if (m := _PTY.search(seen)) is not None and _READY in seen:
                return m.group(1).decode()
            if self.proc.poll() is not None or time.monotonic() - self.started > ready_s:
                print(f"hil rig (qemu): no serial port or no ready firmware from qemu in "
                      f"{ready_s} s: {seen.decode(errors='replace')}", file=sys.stderr)
                return None
            time.sleep(0.01)

    def serve(self, stop: _StopRequest, parent: int) -> str:
        """Pass QEMU's output on to stderr until a stop, QEMU's exit or the parent's end;
        why it ended. Draining matters: a full pipe would stall QEMU."""
        while stop.reason is None:
            if self.proc.poll() is not None:
                stop.reason = f"qemu exited {self.proc.returncode}"
            elif os.getppid() != parent:
                stop.reason = "parent gone"
            else:
                if data := self._read():
                    text = data.decode(errors="replace")
                    self.output.append(text)
                    sys.stderr.write(text)
                time.sleep(0.05)
        return stop.reason

    def stop(self) -> None:
        """Terminate QEMU (kill it after 5 s) and keep what it wrote last."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):  # blocking-free: it has exited
            while chunk := os.read(self.fd, 65536):
                self.output.append(chunk.decode(errors="replace"))

    def rig_json(self, settings: dict[str, str], reason: str,
                 link: Path | None) -> dict[str, Any]:
        """rig.json: the build, the settings, how it ended and its stall reports."""
        return {"process": "rig_firmware", "build": "qemu", "machine": QEMU_MACHINE,
                "cpu": "cortex-m4 (fpv4-sp-d16)", "elf": str(QEMU_ELF),
                "end_reason": reason, "path": self.path, "link": str(link) if link else None,
                "settings": settings, "qemu_exit": self.proc.returncode,
                "boot_s": time.monotonic() - self.started,
                **stall_figures("".join(self.output))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plant_server.firmware_rig",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", required=True)
    p.add_argument("--out")
    p.add_argument("--link")
    p.add_argument("--kind", choices=("host", "qemu"), help="rig_emulator.kind")
    args = p.parse_args(argv)
    overrides = {"rig_emulator.kind": args.kind} if args.kind else None
    out = Path(args.out) if args.out else None
    link = Path(args.link) if args.link else None
    try:
        config = load_config(args.config, overrides)
        kind = config.rig_emulator.kind
        if kind == "python":
            raise ConfigError("rig_emulator.kind is python: use plant_server.rig_emulator")
        build(kind)
        if kind == "host":
            settings = host_settings(config)
            extra = {"out": str(out)} if out else {}
            if link:
                extra["link"] = str(link)
            argv_c = [str(HOST_BIN), *(f"{k}={v}" for k, v in {**settings, **extra}.items())]
            sys.stdout.flush()
            os.execv(argv_c[0], argv_c)  # it writes rig.json and ends with its parent
        return run_qemu(config, out, link, config.rig_emulator.ready_timeout_s)
    except (ConfigError, ValueError) as exc:
        print(f"hil rig ({args.kind or 'firmware'}): {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:
        print(f"hil rig: {exc}", file=sys.stderr)
        return EXIT_FAULT


if __name__ == "__main__":
    from hil.app.exits import leave

    leave(main())

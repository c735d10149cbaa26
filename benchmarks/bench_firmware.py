"""The C rig firmware over a pseudo-terminal: which STATE rates the host build and the QEMU
image hold, and how fast they answer. Run by hand:

    .venv/bin/python benchmarks/bench_firmware.py [--seconds 2] [--rates 200,500,1000,2000]

For each build and rate: HELLO, CLEAR, then every STATE answered at once with a CONTROL for
`--seconds`. Reported: STATEs received per second against the rate, rig watchdog trips
(a rig that held the rate trips none), the STATE inter-arrival p50/p99 at the host and the
rig's own tick interval p99 (its timestamps), and CLEAR -> first MOTOR_ENABLED STATE and
ESTOP -> FAULT latencies (median of 5). The host build is paced at --baud (default 2000000,
so the link is not the limit); QEMU does not pace its UART.

    .venv/bin/python benchmarks/bench_firmware.py --stalls [--repeat 5] [--fifo]

QEMU's own stalls (docs/firmware.md): the image at 500 Hz, watchdog 50 ms, armed and fed (a
CONTROL per STATE), is stopped with SIGSTOP for 30-300 ms, 10 ms after the host's last
CONTROL, then fed again; counted: runs whose watchdog tripped, with the port's stall
compensation on (stall_comp=1) and off. --fifo runs QEMU under SCHED_FIFO 50 as hil run does.
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
import tempfile
import time
from pathlib import Path

import numpy as np
import serial

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Decoder,
    Encoder,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    Hello,
    State,
)
from plant_server import firmware_rig

_PTY = re.compile(rb"char device redirected to (/dev/pts/\d+)")


def start(kind: str, rate: int, baud: int, tmp: Path, fifo: bool = False,
          **extra: object) -> tuple[subprocess.Popen, str]:
    firmware_rig.build(kind)
    settings = {"rate_hz": rate, "watchdog_ms": 50, "baud": baud, **extra}
    if kind == "host":
        link = tmp / "rig.pty"
        link.unlink(missing_ok=True)
        proc = subprocess.Popen([str(firmware_rig.HOST_BIN), f"link={link}", f"out={tmp}",
                                 *(f"{k}={v}" for k, v in settings.items())],
                                stdout=subprocess.DEVNULL)
        give_up = time.monotonic() + 10
        while not link.is_symlink():
            assert time.monotonic() < give_up and proc.poll() is None, "host build not ready"
            time.sleep(0.01)
        return proc, str(link)
    def realtime() -> None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))

    proc = subprocess.Popen(firmware_rig.qemu_command({k: str(v) for k, v in settings.items()}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=realtime if fifo else None)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    seen = b""
    give_up = time.monotonic() + 20
    while (m := _PTY.search(seen)) is None or b"hil-rig-qemu: ready" not in seen:
        assert time.monotonic() < give_up and proc.poll() is None, seen
        with contextlib.suppress(BlockingIOError):
            seen += os.read(fd, 4096)
        time.sleep(0.01)
    return proc, m.group(1).decode()


class Host:
    def __init__(self, port: str, baud: int) -> None:
        self.ser = serial.Serial(port, baud, timeout=0.002, write_timeout=0)
        self.dec = Decoder()
        self.enc = Encoder()
        self.ser.write(b"\x00")

    def send(self, message: object) -> int:
        self.ser.write(self.enc.encode(message))  # type: ignore[arg-type]
        return time.monotonic_ns()

    def frames(self) -> list[tuple[int, Frame]]:
        data = self.ser.read(1)
        if not data:
            return []
        t = time.monotonic_ns()
        if self.ser.in_waiting:
            data += self.ser.read(self.ser.in_waiting)
        self.dec.feed(data)
        return [(t, e) for e in self.dec if isinstance(e, Frame)]

    def wait(self, kind: type, flags: int = 0, timeout_s: float = 2.0) -> tuple[int, Frame]:
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            for t, f in self.frames():
                if isinstance(f.message, kind) and f.flags & flags == flags:
                    return t, f
        raise TimeoutError(kind.__name__)


def measure(kind: str, rate: int, seconds: float, baud: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(kind, rate, baud, Path(tmp))
        try:
            h = Host(port, baud)
            h.send(Hello())
            h.wait(Capabilities, timeout_s=3)
            clears, estops = [], []
            for _ in range(5):
                t0 = h.send(Clear())
                t1, _ = h.wait(State, Flags.MOTOR_ENABLED)
                clears.append((t1 - t0) / 1e3)
                t0 = h.send(Estop())
                t1, f = h.wait(Fault)
                assert f.message.code == FaultCode.ESTOP
                estops.append((t1 - t0) / 1e3)
            h.send(Clear())
            h.wait(State, Flags.MOTOR_ENABLED)
            arrivals, stamps, trips = [], [], 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for t, f in h.frames():
                    if isinstance(f.message, State):
                        h.send(Control(commands=(0.0,), state_seq=f.seq))
                        arrivals.append(t)
                        stamps.append(f.message.timestamp_us)
                    elif isinstance(f.message, Fault):
                        trips += 1
                        h.send(Clear())
            h.ser.close()
        finally:
            proc.send_signal(signal.SIGTERM if kind == "qemu" else signal.SIGINT)
            proc.wait(timeout=10)
    gaps = np.diff(arrivals) / 1e3
    ticks = np.diff(np.array(stamps, dtype=np.int64)) % (1 << 32)
    return {"states_per_s": len(arrivals) / seconds, "faults": trips,
            "arrival_p50_us": float(np.percentile(gaps, 50)),
            "arrival_p99_us": float(np.percentile(gaps, 99)),
            "rig_tick_p99_us": float(np.percentile(ticks, 99)),
            "clear_to_armed_us": float(np.median(clears)),
            "estop_to_fault_us": float(np.median(estops))}


def stall_trips(stop_ms: float, compensated: bool, fifo: bool) -> bool:
    """One run: did the watchdog trip after QEMU was stopped for `stop_ms`?"""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start("qemu", 500, 230_400, Path(tmp), fifo, stall_comp=int(compensated))
        try:
            h = Host(port, 230_400)
            h.send(Hello())
            h.wait(Capabilities, timeout_s=3)
            h.send(Clear())
            h.wait(State, Flags.MOTOR_ENABLED)

            def feed(seconds: float) -> bool:
                tripped = False
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    for _, f in h.frames():
                        if isinstance(f.message, State):
                            h.send(Control(commands=(0.0,), state_seq=f.seq))
                        elif isinstance(f.message, Fault):
                            tripped |= f.message.code == FaultCode.WATCHDOG
                return tripped

            if feed(0.3):  # tripped before the stop: the machine, not this run's stall
                h.send(Clear())
                h.wait(State, Flags.MOTOR_ENABLED)
                feed(0.3)
            end = time.monotonic() + 0.01
            while time.monotonic() < end:  # no CONTROL in flight at the stop
                h.frames()
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(stop_ms / 1e3)
            os.kill(proc.pid, signal.SIGCONT)
            tripped = feed(0.5)
            h.ser.close()
        finally:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    return tripped


def stalls(repeat: int, fifo: bool) -> None:
    print(f"QEMU stopped for S ms (watchdog 50 ms, 500 Hz): runs that tripped, of {repeat}")
    print(f"{'S (ms)':>7} {'compensated':>12} {'off':>5}")
    for stop_ms in (30, 80, 150, 300):
        on = sum(stall_trips(stop_ms, True, fifo) for _ in range(repeat))
        off = sum(stall_trips(stop_ms, False, fifo) for _ in range(repeat))
        print(f"{stop_ms:7d} {on:12d} {off:5d}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rates", default="200,500,1000,2000")
    p.add_argument("--baud", type=int, default=2_000_000)
    p.add_argument("--builds", default="host,qemu")
    p.add_argument("--stalls", action="store_true", help="QEMU's stall compensation")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--fifo", action="store_true", help="QEMU under SCHED_FIFO 50")
    args = p.parse_args()
    if shutil.which("qemu-system-arm") is None and ("qemu" in args.builds or args.stalls):
        print("qemu-system-arm missing: apt-get install -y qemu-system-arm", file=sys.stderr)
        return 1
    if args.stalls:
        stalls(args.repeat, args.fifo)
        return 0
    print(f"{'build':6} {'rate':>5} {'STATE/s':>8} {'held':>5} {'faults':>6} "
          f"{'arr p50':>8} {'arr p99':>8} {'tick p99':>9} {'CLEAR->ARMED':>13} "
          f"{'ESTOP->FAULT':>13}   (us)")
    for build in args.builds.split(","):
        for rate in (int(r) for r in args.rates.split(",")):
            m = measure(build, rate, args.seconds, args.baud)
            held = m["faults"] == 0 and m["states_per_s"] >= 0.97 * rate
            print(f"{build:6} {rate:5d} {m['states_per_s']:8.1f} {'yes' if held else 'no':>5} "
                  f"{m['faults']:6d} {m['arrival_p50_us']:8.0f} {m['arrival_p99_us']:8.0f} "
                  f"{m['rig_tick_p99_us']:9.0f} {m['clear_to_armed_us']:13.0f} "
                  f"{m['estop_to_fault_us']:13.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

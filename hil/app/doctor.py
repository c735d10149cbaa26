"""`hil doctor`: is this bench ready for real time? Each check says pass, warn or fail, and
the exact fix.

Checks: SCHED_FIFO and memory locking allowed (and the kernel's real-time throttling),
the CPU frequency governor, timer slack, isolated CPUs, the numba cache warm for the
configured plant and law, the serial port present and permitted (when the config names one),
the loopback transport floor (a short ZeroMQ ping-pong with a child process) and a
cyclictest-like loop-jitter measurement at the configured rate (lateness p50/p99/max of
absolute-deadline wake-ups, under the scheduling the runtime asks for).

Ready means no check failed; a warning costs margin, not correctness. The checks read the
machine as it is: run `hil doctor` on the bench, with the config of the runs.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.config import CONTROLLER_GUARD, Config

PASS, WARN, FAIL = "pass", "warn", "fail"
_SYS_CPU = Path("/sys/devices/system/cpu")
_LIMITS_LINE = "@hil  -  rtprio  99"  # /etc/security/limits.d/hil.conf
_MEMLOCK_LINE = "@hil  -  memlock  unlimited"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | warn | fail
    detail: str  # what was found, with the figures
    fix: str = ""  # the exact fix, empty when there is nothing to do
    figures: dict[str, Any] | None = None


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]
    host: str
    at: str
    rate_hz: float

    @property
    def ready(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "at": self.at, "rate_hz": self.rate_hz,
                "ready": self.ready, "checks": [asdict(c) for c in self.checks]}


# ----------------------------------------------------------------- scheduling and memory
def check_sched_fifo(priority: int) -> Check:
    """Ask for SCHED_FIFO for this process, and restore its policy afterwards."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    rt_runtime = _read_int("/proc/sys/kernel/sched_rt_runtime_us")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        limit = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        return Check("sched_fifo", FAIL,
                     f"refused at priority {priority}: {exc} (RLIMIT_RTPRIO {limit}); the loops "
                     "would run at normal priority",
                     f"add the user to group hil and the line `{_LIMITS_LINE}` to "
                     "/etc/security/limits.d/hil.conf, then log in again (or, for this venv "
                     "only: sudo setcap cap_sys_nice+ep $(readlink -f .venv/bin/python))")
    finally:
        os.sched_setscheduler(0, before[0], before[1])
    throttle = ("off" if rt_runtime == -1 else
                f"{rt_runtime / 1e4:.0f} % of each second" if rt_runtime is not None else "unknown")
    return Check("sched_fifo", PASS, f"granted at priority {priority}; real-time throttling: "
                 f"{throttle}", figures={"priority": priority, "sched_rt_runtime_us": rt_runtime})


def check_memory_lock() -> Check:
    from hil.runtime.rt import MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT

    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} kB"
    libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
        err = os.strerror(ctypes.get_errno())
        return Check("memory_lock", WARN,
                     f"mlockall refused: {err} (RLIMIT_MEMLOCK {limit}); a page fault in the "
                     "loop can cost a deadline",
                     f"add the line `{_MEMLOCK_LINE}` to /etc/security/limits.d/hil.conf and "
                     "log in again", {"rlimit_memlock": limit})
    libc.munlockall()
    return Check("memory_lock", PASS, f"mlockall granted (RLIMIT_MEMLOCK {limit})",
                 figures={"rlimit_memlock": limit})


# ----------------------------------------------------------------- CPU
def check_governor() -> Check:
    governors = {}
    for path in sorted(_SYS_CPU.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        governors[path.parent.parent.name] = path.read_text().strip()
    if not governors:
        return Check("cpu_governor", PASS, "no cpufreq interface: the frequency is not under "
                     "this OS's control (a VM, or a fixed-frequency CPU)")
    slow = sorted(cpu for cpu, g in governors.items() if g != "performance")
    if not slow:
        return Check("cpu_governor", PASS, "performance on every CPU", figures=governors)
    return Check("cpu_governor", WARN,
                 f"{', '.join(f'{c}: {governors[c]}' for c in slow)}: the CPU slows down when "
                 "idle and wakes late", "sudo cpupower frequency-set -g performance (or: echo "
                 "performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
                 governors)


def check_timer_slack(fifo_granted: bool) -> Check:
    slack_ns = _read_int("/proc/self/timerslack_ns")
    if slack_ns is None:
        return Check("timer_slack", WARN, "cannot read /proc/self/timerslack_ns")
    if fifo_granted:
        return Check("timer_slack", PASS, f"{slack_ns} ns for normal threads; none for the "
                     "SCHED_FIFO loops (the kernel gives real-time threads no slack)",
                     figures={"timerslack_ns": slack_ns})
    return Check("timer_slack", WARN if slack_ns > 1000 else PASS,
                 f"{slack_ns} ns: without SCHED_FIFO every wake-up may come this late",
                 "grant SCHED_FIFO (see sched_fifo): real-time threads have no timer slack",
                 {"timerslack_ns": slack_ns})


def check_isolated_cpus(config: Config) -> Check:
    isolated = _parse_cpu_list((_SYS_CPU / "isolated").read_text().strip()
                               if (_SYS_CPU / "isolated").exists() else "")
    pinned = {c for c in (config.realtime.plant_cpu, config.realtime.controller_cpu)
              if c is not None}
    n = os.cpu_count() or 1
    if not isolated:
        return Check("isolated_cpus", WARN,
                     f"none of {n} CPUs is isolated: the loops share CPUs with everything else",
                     f"boot with isolcpus={n - 1} nohz_full={n - 1} rcu_nocbs={n - 1} on the "
                     f"kernel command line, then set realtime.plant_cpu: {n - 1}"
                     if n > 1 else "a machine with at least 2 CPUs",
                     {"isolated": [], "cpus": n})
    if not pinned or not pinned <= isolated:
        return Check("isolated_cpus", WARN,
                     f"isolated CPUs {sorted(isolated)}, but the loops are pinned to "
                     f"{sorted(pinned) or 'none'}",
                     f"set realtime.plant_cpu (and realtime.controller_cpu) to "
                     f"{', '.join(map(str, sorted(isolated)))}",
                     {"isolated": sorted(isolated), "pinned": sorted(pinned)})
    return Check("isolated_cpus", PASS, f"the loops are pinned to isolated CPUs "
                 f"{sorted(pinned)}", figures={"isolated": sorted(isolated)})


def _parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


# ----------------------------------------------------------------- numba cache
_CACHE_PROBE = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from hil.config import build_plant_model, load_config
from controller_client.main import law_from_config
config = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
model = build_plant_model(config)
x = np.array(config.plant.initial_state, dtype=np.float64)
model.step(x, np.asarray(model.equilibrium_input, dtype=np.float64), 1e-3, np.empty_like(x))
law = law_from_config(config)
law.compute(x, 0.0)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def check_numba_cache(config_path: str | None, timeout_s: float = 300.0) -> Check:
    """Start the plant model and the law twice in fresh interpreters: the first run compiles
    what the cache lacks (and fills it), the second loads. Cold when the first took much
    longer than the second."""
    times = []
    for _ in range(2):
        args = [sys.executable, "-c", _CACHE_PROBE] + ([config_path] if config_path else [])
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
        if done.returncode != 0:
            return Check("numba_cache", FAIL, "the plant model or the law does not start: "
                         + (done.stderr.strip().splitlines() or ["no output"])[-1],
                         "run `hil run` with this config to see the full error")
        times.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    first, second = times
    figures = {"first_start_s": round(first, 3), "second_start_s": round(second, 3)}
    if first > second + 1.0:
        return Check("numba_cache", WARN,
                     f"was cold: the first start compiled for {first:.1f} s (warm now: "
                     f"{second:.1f} s); a cold start delays the handshake",
                     "nothing more: it is warm now. Warm it after every install or change of "
                     "hil/dynamics or controller_client (hil doctor, or one hil run), and "
                     "keep the source tree writable (the cache lives beside it)", figures)
    return Check("numba_cache", PASS, f"warm: the plant model and the law start in "
                 f"{second:.2f} s", figures=figures)


# ----------------------------------------------------------------- serial port
def check_serial(config: Config) -> Check:
    if config.plant.backend != "serial":
        return Check("serial_port", PASS, f"not used (plant.backend: {config.plant.backend})")
    if config.rig_emulator.enabled:
        return Check("serial_port", PASS, "the emulated rig's pseudo-terminal (made by hil run)")
    port = config.serial.port
    if not os.path.exists(port):
        by_id = sorted(str(p) for p in Path("/dev/serial/by-id").glob("*")) \
            if Path("/dev/serial/by-id").exists() else []
        return Check("serial_port", FAIL, f"{port} does not exist"
                     + (f"; present: {', '.join(by_id)}" if by_id else "; no serial adapters"),
                     "plug in the rig, then set serial.port to its /dev/serial/by-id/... path "
                     "(stable across re-plugging)")
    if not os.access(port, os.R_OK | os.W_OK):
        return Check("serial_port", FAIL, f"{port} exists but this user may not open it",
                     "sudo usermod -aG dialout $USER (log in again), or a udev rule in "
                     "/etc/udev/rules.d/99-hil-rig.rules: SUBSYSTEM==\"tty\", "
                     "ATTRS{idVendor}==\"0483\", MODE=\"0660\", GROUP=\"dialout\" (your "
                     "adapter's vendor id: udevadm info -a " + port + ")")
    return Check("serial_port", PASS, f"{port} present and readable/writable")


# ----------------------------------------------------------------- transport floor
_PONG = r"""
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.connect(sys.argv[1])
s.send(b"ready")
while True:
    m = s.recv()
    if m == b"end":
        break
    s.send(m)
s.close(0)
ctx.term()
"""


def check_transport_floor(period_ns: int, n: int = 2000, timeout_s: float = 60.0) -> Check:
    """Round trips of a 100-byte message over loopback TCP with a child process (ROUTER /
    DEALER, as the plant and controller use): the least any closed loop can take."""
    import zmq

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    child = subprocess.Popen([sys.executable, "-c", _PONG, endpoint])
    try:
        if not sock.poll(int(timeout_s * 1000)):
            return Check("transport_floor", FAIL, f"no answer over {endpoint} within "
                         f"{timeout_s:g} s", "check that loopback TCP works (ip link show lo)")
        peer, _ = sock.recv_multipart()
        payload = bytes(100)
        rtt = np.empty(n, dtype=np.int64)
        for i in range(n):
            t0 = time.monotonic_ns()
            sock.send_multipart([peer, payload])
            if not sock.poll(int(timeout_s * 1000)):
                return Check("transport_floor", FAIL, "the ping-pong stalled",
                             "check the machine's load (top)")
            sock.recv_multipart()
            rtt[i] = time.monotonic_ns() - t0
        sock.send_multipart([peer, b"end"])
    finally:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        sock.close(0)
        ctx.term()
    p50, p99 = (float(v) / 1e3 for v in np.percentile(rtt, [50, 99]))
    figures = {"p50_us": round(p50, 1), "p99_us": round(p99, 1), "n": n}
    period_us = period_ns / 1e3
    text = f"ZeroMQ loopback round trip p50 {p50:.0f} us, p99 {p99:.0f} us ({n} pings)"
    if p99 < 0.3 * period_us:
        return Check("transport_floor", PASS, f"{text}: < 30 % of the {period_us:g} us period",
                     figures=figures)
    status = WARN if p50 < 0.5 * period_us else FAIL
    return Check("transport_floor", status,
                 f"{text}: the period is {period_us:g} us, and the loop adds its own time",
                 "lower run.rate_hz, or stop what loads the machine (top); on a laptop, plug it "
                 "in and set the governor to performance", figures)


# ----------------------------------------------------------------- shared-memory fast path
_SHM_ECHO = r"""
import sys, time
from hil.link import shm
seg = shm.Segment.open(sys.argv[1])
states, controls = shm.StateReader(seg), shm.ControlWriter(seg, seg.session)
spin_ns = int(sys.argv[2])
print("ready", flush=True)
while True:
    if not states.wait(time.monotonic_ns() + 5_000_000_000, states.has_new, time.monotonic_ns,
                       spin_ns):
        break
    seq, _, _, _ = states.take()
    if seq < 0:
        break
    controls.write(seq + 1, seq, [0.0], 0, 0, 0)
seg.close()
"""


def check_shm_fast_path(config: Config, n: int = 2000, timeout_s: float = 30.0) -> Check:
    """Round trips through the shared-memory data plane (run.transport shm) with a child
    process, waiting as the runtime does (spin run.shm_spin_us, then the futex doorbell):
    can this machine hold the fast path at the configured rate?"""
    from hil.link import shm

    period_us = config.period_ns / 1e3
    spin_ns = round(config.run.shm_spin_us * 1e3)
    try:
        seg = shm.Segment.create(f"doctor-{os.getpid()}-{time.monotonic_ns()}", 6)
    except (shm.SharedMemoryError, OSError) as exc:
        return Check("shm_fast_path", FAIL, f"no shared-memory data plane here: {exc}",
                     "use run.transport: zmq (check that /dev/shm is mounted and writable)")
    child = subprocess.Popen([sys.executable, "-c", _SHM_ECHO, seg.name, str(spin_ns)],
                             stdout=subprocess.PIPE, text=True)
    rtt = np.empty(n, dtype=np.int64)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            return Check("shm_fast_path", FAIL, "the shared-memory echo did not start",
                         "run.transport: zmq; check that hil.link.shm imports")
        states, controls = shm.StateWriter(seg), shm.ControlReader(seg)
        clock = time.monotonic_ns
        for i in range(n):
            t0 = clock()
            states.write(i, t0, [0.0] * 6, 0)
            if not controls.wait(t0 + round(timeout_s * 1e9), controls.has_new, clock, spin_ns):
                return Check("shm_fast_path", FAIL, "the shared-memory ping-pong stalled",
                             "check the machine's load (top)")
            controls.take()
            rtt[i] = clock() - t0
        states.write(-1, 0, [0.0] * 6, 0)
    finally:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        seg.close()
    p50, p99 = (float(v) / 1e3 for v in np.percentile(rtt, [50, 99]))
    figures = {"p50_us": round(p50, 2), "p99_us": round(p99, 1), "n": n,
               "spin_us": config.run.shm_spin_us}
    text = (f"shared-memory round trip p50 {p50:.1f} us, p99 {p99:.0f} us ({n} pings, spin "
            f"{config.run.shm_spin_us:g} us then futex)")
    if p99 < 0.3 * period_us:
        return Check("shm_fast_path", PASS, f"{text}: < 30 % of the {period_us:g} us period",
                     figures=figures)
    status = WARN if p50 < 0.5 * period_us else FAIL
    return Check("shm_fast_path", status,
                 f"{text}: the period is {period_us:g} us, and the loop adds its own time",
                 "lower run.rate_hz, raise run.shm_spin_us, pin plant and controller to their "
                 "own CPUs (realtime.plant_cpu / controller_cpu), or stop what loads the "
                 "machine (top)", figures)


# ----------------------------------------------------------------- loop jitter
def measure_jitter(rate_hz: float, seconds: float,
                   clock: Callable[[], int] = time.monotonic_ns) -> np.ndarray:
    """Sleep to absolute deadlines (next += period) for `seconds`; each wake-up's lateness
    in ns. Like cyclictest: no spinning, so this is the OS's wake-up latency."""
    period = round(1e9 / rate_hz)
    n = max(1, round(seconds * rate_hz))
    late = np.empty(n, dtype=np.int64)
    deadline = clock() + period
    for i in range(n):
        remaining = deadline - clock()
        if remaining > 0:
            time.sleep(remaining / 1e9)
        late[i] = clock() - deadline
        deadline += period
    return late


def check_jitter(config: Config, seconds: float) -> Check:
    rtc = config.realtime
    granted = _try_fifo(rtc.sched_priority) if rtc.sched_fifo else False
    try:
        late = measure_jitter(config.run.rate_hz, seconds)
    finally:
        if granted:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    p50, p99, worst = (float(v) / 1e3 for v in np.percentile(late, [50, 99, 100]))
    period_us = config.period_ns / 1e3
    figures = {"p50_us": round(p50, 1), "p99_us": round(p99, 1), "max_us": round(worst, 1),
               "wakeups": int(late.size), "sched_fifo": granted}
    text = (f"{late.size} wake-ups at {config.run.rate_hz:g} Hz"
            f"{' under SCHED_FIFO' if granted else ''}: lateness p50 {p50:.0f} us, p99 "
            f"{p99:.0f} us, max {worst:.0f} us")
    # The controller wakes phase_offset of a period after each tick and must answer before
    # the guard that keeps the end of the period free: a later wake-up is a deadline miss.
    budget_us = (1 - config.controller.phase_offset - CONTROLLER_GUARD) * period_us
    figures["budget_us"] = round(budget_us, 1)
    if worst < 0.5 * budget_us and p99 < 0.1 * period_us:
        return Check("loop_jitter", PASS, text, figures=figures)
    fix = ("" if granted else "grant SCHED_FIFO (see sched_fifo), ") + (
        "isolate a CPU for the loops (isolated_cpus), stop other load (top), or lower "
        "run.rate_hz")
    if worst < budget_us:
        return Check("loop_jitter", WARN, f"{text}: within the {budget_us:.0f} us a control "
                     "has, with little margin", fix, figures)
    return Check("loop_jitter", FAIL, f"{text}: later than the {budget_us:.0f} us a control "
                 "has after its state; such a wake-up is a deadline miss", fix, figures)


def _try_fifo(priority: int) -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (OSError, AttributeError):
        return False


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------- all of them
CHECK_NAMES = ("sched_fifo", "memory_lock", "cpu_governor", "timer_slack", "isolated_cpus",
               "numba_cache", "serial_port", "transport_floor", "shm_fast_path", "loop_jitter")


def run_checks(config: Config, config_path: str | None = None, jitter_s: float = 2.0,
               on_check: Callable[[Check], None] | None = None,
               only: set[str] | None = None) -> DoctorReport:
    """Every check (or those named in `only`), in order; `on_check` sees each as it
    completes (for printing)."""
    unknown = sorted((only or set()) - set(CHECK_NAMES))
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; the checks are "
                         f"{', '.join(CHECK_NAMES)}")
    priority, wanted = config.realtime.sched_priority, config.realtime.sched_fifo

    def fifo() -> Check:
        check = check_sched_fifo(priority)
        if wanted or check.status == FAIL:
            return check
        return Check("sched_fifo", WARN, f"{check.detail}, but this config turns it off "
                     "(realtime.sched_fifo: false): the loops run at normal priority",
                     "set realtime.sched_fifo: true (the default)", check.figures)

    run: dict[str, Callable[[], Check]] = {
        "sched_fifo": fifo,
        "memory_lock": check_memory_lock,
        "cpu_governor": check_governor,
        "timer_slack": lambda: check_timer_slack(
            wanted and check_sched_fifo(priority).status == PASS),
        "isolated_cpus": lambda: check_isolated_cpus(config),
        "numba_cache": lambda: check_numba_cache(config_path),
        "serial_port": lambda: check_serial(config),
        "transport_floor": lambda: check_transport_floor(config.period_ns),
        "shm_fast_path": lambda: check_shm_fast_path(config),
        "loop_jitter": lambda: check_jitter(config, jitter_s),
    }
    checks: list[Check] = []
    for name in CHECK_NAMES:
        if only is None or name in only:
            checks.append(run[name]())
            if on_check is not None:
                on_check(checks[-1])
    return DoctorReport(tuple(checks), socket.gethostname(),
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), config.run.rate_hz)


def format_check(check: Check) -> str:
    mark = {PASS: "pass", WARN: "WARN", FAIL: "FAIL"}[check.status]
    line = f"{mark:<5} {check.name:<16} {check.detail}"
    if check.fix:
        line += f"\n{'':<23}fix: {check.fix}"
    return line

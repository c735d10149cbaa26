"""Helpers for the fault suite: start real `hil-plant` / `hil-controller` processes on a free
port, follow their JSON-lines logs, read their reports and the plant's recording.

All times compared across processes are `time.monotonic_ns()` readings: one clock for every
process on Linux (docs/design.md), so the plant's own timestamps can be set against the moment
the test sent a signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import free_endpoint  # noqa: F401  (the fault tests import it from here)

from hil.config import dump_config, load_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLAG_SAFE = 1
# The plant reaches its safe output within the watchdog timeout plus this, by its own clock.
# benchmarks/bench_watchdog.py holds it to +2 ms (worst of 20, measured 20.04 ms). The suite
# must also pass on a loaded 2-core machine, where the plant itself may get the CPU tens of
# ms late (seen: +1.2 ms with both cores busy, more with other test suites running), so it
# bounds that loosely and pins what the plant controls: the safe output at once when it sees
# the expiry (DETECT_TO_SAFE_NS), never before the timeout.
WATCHDOG_TIMEOUT_MS = 20.0
SAFE_MARGIN_MS = 50.0
DETECT_TO_SAFE_NS = 1_000_000
# A stop (signal, bye) reaches the safe output within this, on a loaded machine.
STOP_TO_SAFE_NS = 200_000_000
# The data planes every watchdog and safety test runs on (run.transport; hil/link/dataplane.py).
TRANSPORTS = ("zmq", "shm")
# Generous: processes start slowly on a loaded 2-core CI machine (imports, numba cache).
START_TIMEOUT_S = 60.0


def write_config(folder: Path, endpoint: str, **dotted: Any) -> Path:
    """A run config, validated: defaults plus overrides, `run__mode="lockstep"` for run.mode."""
    overrides: dict[str, Any] = {
        "run.mode": "realtime", "run.duration_s": 2.0,
        "plant.endpoint": endpoint, "plant.attach_timeout_s": START_TIMEOUT_S,
        "controller.endpoint": endpoint, "controller.connect_timeout_s": START_TIMEOUT_S,
        "record.html": False, "record.history_db": None,
    }
    overrides.update({key.replace("__", "."): value for key, value in dotted.items()})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(dump_config(load_config(None, overrides)))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"  # a process that hangs says where when it is aborted
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start(process: str, config: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """Start `plant` or `controller` as its own process writing into `out`."""
    module = {"plant": "plant_server.main", "controller": "controller_client.main"}[process]
    return subprocess.Popen([sys.executable, "-m", module, "--config", str(config),
                             "--out", str(out), "--run-id", out.name, *extra],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_attached(config: Path, out: Path) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """Start the plant and the controller; return them once the controller has attached."""
    plant = start("plant", config, out)
    controller = start("controller", config, out)
    try:
        wait_for_event(out, "controller", "attached", controller)
    except BaseException:
        kill_all(plant, controller)
        raise
    return plant, controller


def start_script(name: str, *args: str) -> subprocess.Popen[str]:
    """Start one of this folder's helper scripts (junk_peer.py, scripted_controller.py)."""
    return subprocess.Popen([sys.executable, str(HERE / name), *args], cwd=ROOT, env=_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_event(out: Path, process: str, event: str, proc: subprocess.Popen | None = None,
                   timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
    """The first `event` in `<out>/<process>.log.jsonl`, waiting for it to be written."""
    path = out / f"{process}.log.jsonl"
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if path.exists():
            for line in path.read_text().splitlines():
                if not line.endswith("}"):
                    continue  # being written
                record = json.loads(line)
                if record.get("event") == event:
                    return record
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{process} exited ({proc.returncode}) before {event!r}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)
    raise AssertionError(f"no {event!r} in {path} within {timeout_s} s")


def finish(proc: subprocess.Popen[str], sig: int | None = None,
           timeout_s: float = 30.0) -> tuple[int, str]:
    """Optionally signal `proc`, then wait for it; its exit code and stderr."""
    code, _out, err = outputs(proc, sig, timeout_s)
    return code, err


def outputs(proc: subprocess.Popen[str], sig: int | None = None,
            timeout_s: float = 30.0) -> tuple[int, str, str]:
    """Optionally signal `proc`, then wait for it; its exit code, stdout and stderr."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        raise AssertionError(f"process did not end within {timeout_s} s: {err}") from None
    return proc.returncode, out, err


def report(out: Path, process: str) -> dict[str, Any]:
    return json.loads((out / f"{process}.json").read_text())


def wait_for_controlled_steps(out: Path, steps: int, run: subprocess.Popen[str],
                              timeout_s: float = 60.0) -> None:
    """Until the plant in `out` has recorded `steps` steps under control (bounded)."""
    from hil.recording.recorder import RecordingTail

    tail, seen = RecordingTail(out / "plant.rec"), 0
    give_up = time.monotonic() + timeout_s
    while seen < steps:
        assert run.poll() is None and time.monotonic() < give_up, \
            f"{seen} controlled steps in {timeout_s:g} s"
        rows = tail.poll()
        seen += int((rows["control_seq"] > 0).sum()) if rows else 0
        time.sleep(0.01)


def recording(out: Path) -> Any:
    from hil.recording.recorder import read_recording

    return read_recording(out / "plant.rec")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def child_pid(parent: int, marker: str) -> int:
    """The pid of `parent`'s child whose name (`hil run` forks `hil-plant`) or command line
    contains `marker`."""
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            name = Path(f"/proc/{pid}/comm").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if marker.encode() in name or marker.encode() in cmdline:
                return int(pid)
    raise AssertionError(f"no child of {parent} runs {marker!r}")


def kill_all(*procs: subprocess.Popen[str]) -> None:
    """Clean-up: SIGKILL whatever a failed test left running (only our own children)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()

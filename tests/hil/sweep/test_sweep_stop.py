"""A stop signal for `hil sweep` stops it promptly whichever of its threads the kernel hands
the signal to (hil/sweep/runner.py `_as_they_end`)."""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SYS_TGKILL = 234  # x86-64 Linux
SYS_WAIT4 = "61"


def _tgkill(pid: int, tid: int, sig: int) -> None:
    """`sig` to thread `tid` of process `pid` (os.kill lets the kernel choose the thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {sig})")


def _worker_thread(pid: int) -> int | None:
    """The tid of the sweep's thread waiting on its `hil run` (in wait4, x86-64's syscall 61:
    the pool's worker; the main thread waits on a lock)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid) and (task / "syscall").read_text().split()[0] == SYS_WAIT4:
            return int(task.name)
    return None


@pytest.mark.slow
def test_a_ctrl_c_the_kernel_hands_to_a_worker_thread_stops_the_sweep(tmp_path: Path) -> None:
    spec = {"configs": [str(REPO / "configs" / "default.yaml")], "laws": ["lqr"],
            "experiments": {"own": None}, "seeds": [1, 2], "perturb": {"theta1": 0.01},
            "duration_s": 3600, "rate_hz": 250,
            "set": {"record.history_db": None}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "hil.cli", "sweep",
                              str(tmp_path / "sweep.yaml"), "--out", str(out), "--jobs", "1"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 120
        logs = out / "runs"
        while not any(p.name == "plant.log.jsonl" and "controller attached" in p.read_text()
                      for p in logs.glob("*/plant.log.jsonl")):  # a run of an hour under way
            assert sweep.poll() is None, sweep.communicate()
            assert time.monotonic() < give_up, "no run under way in 120 s"
            time.sleep(0.05)
        worker = _worker_thread(sweep.pid)
        assert worker is not None and worker != sweep.pid
        _tgkill(sweep.pid, worker, signal.SIGINT)
        _, stderr = sweep.communicate(timeout=60)  # not the hour the run would take
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 130, stderr
    assert "continue with hil sweep --resume" in stderr
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["interrupted"] is True
    (stopped,) = [json.loads(p.read_text()) for p in out.glob("runs/*/report.json")]
    assert stopped["interrupted"] is True  # the run under way was asked to stop, and did

"""Memory locking locks what the process touches, and does not populate what it does not.

Plain mlockall(MCL_CURRENT | MCL_FUTURE) faults in every later mapping at once: a run's
processes grew from 180 to 500 MB and spent ~150 ms in the kernel at SCHED_FIFO priority,
stalling the other real-time runs on the machine. Runs in a child process: a locked process
stays locked.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, mmap, structlog
from hil.runtime import rt

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmLck")}

report = rt.apply_realtime(None, False, 50, True, structlog.get_logger())
before = status()
untouched = mmap.mmap(-1, 256 * 2**20)          # mapped, never touched
after_map = status()
touched = mmap.mmap(-1, 64 * 2**20)
for i in range(0, len(touched), 4096):
    touched[i] = 1
after_touch = status()
print(json.dumps({"granted": report.granted, "refused": report.refused, "before": before,
                  "after_map": after_map, "after_touch": after_touch}))
"""


def test_lock_memory_locks_touched_pages_without_populating_untouched_mappings() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=60, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if "lock_memory" in figures["refused"]:
        # Unprivileged with a small RLIMIT_MEMLOCK: refused, and said so.
        assert figures["granted"] == {} and figures["refused"]["lock_memory"]
        return
    assert figures["granted"] == {"lock_memory": True}
    mb = 1024
    # 256 MiB mapped but never touched: neither resident nor locked.
    assert figures["after_map"]["VmRSS"] - figures["before"]["VmRSS"] < 16 * mb, figures
    # 64 MiB touched: resident and locked.
    grown = figures["after_touch"]["VmLck"] - figures["after_map"]["VmLck"]
    assert 60 * mb <= grown <= 80 * mb, figures


LEAVE = r"""
import json, os, threading, structlog
from hil.runtime import rt

report = rt.apply_realtime(None, True, 10, False, structlog.get_logger())
started = threading.Event()
stop = threading.Event()
def helper():
    started.set()
    stop.wait(10)
t = threading.Thread(target=helper)
t.start()
started.wait(10)
def policies():
    return sorted(os.sched_getscheduler(int(tid)) for tid in os.listdir("/proc/self/task"))
before = policies()
moved = rt.leave_realtime()
after = policies()
stop.set()
t.join()
print(json.dumps({"granted": report.granted, "before": before, "after": after,
                  "moved": moved}))
"""


def test_leave_realtime_puts_every_thread_back_to_normal_scheduling() -> None:
    import os

    out = subprocess.run([sys.executable, "-c", LEAVE], capture_output=True, text=True,
                         timeout=60, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["after"] == [os.SCHED_OTHER] * len(figures["after"])
    if "sched_fifo" in figures["granted"]:
        # The helper thread inherited SCHED_FIFO from the main thread; both moved back.
        assert figures["before"] == [os.SCHED_FIFO, os.SCHED_FIFO] and figures["moved"] == 2
    else:
        assert figures["moved"] == 0

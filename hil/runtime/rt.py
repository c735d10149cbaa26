"""Latency hygiene for a Python real-time loop.

Asks the OS for CPU affinity, SCHED_FIFO and locked memory when configured, and only warns
when refused (an ordinary lab PC or container may say no). Keeps the garbage collector out
of the loop: collect and freeze what start-up allocated, then disable automatic collection
while the loop runs; the loop allocates little and what it does is freed by refcounting.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4  # Linux >= 4.4: lock pages as they are first touched, do not populate


@dataclass
class RealtimeReport:
    requested: dict[str, Any] = field(default_factory=dict)
    granted: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def apply_realtime(cpu: int | None, sched_fifo: bool, priority: int, lock_memory: bool,
                   log: Any, report: RealtimeReport | None = None) -> RealtimeReport:
    """Apply what is asked for; log one warning per refusal; add to `report` if given.

    Call it for SCHED_FIFO *before* creating sockets or threads: threads inherit the policy
    they are created under, and ZeroMQ's I/O thread carries every message (measured: with
    it left at normal priority, 2-3x more deadline misses at 1 kHz). Call it for the CPU
    affinity of the loop afterwards, so helper threads stay free to run on the other CPUs.
    """
    report = report if report is not None else RealtimeReport()
    if cpu is not None:
        report.requested["cpu"] = cpu
        try:
            os.sched_setaffinity(0, {cpu})
            report.granted["cpu"] = cpu
        except (OSError, ValueError) as exc:
            report.refused["cpu"] = str(exc)
            log.warning("cpu affinity refused", cpu=cpu, error=str(exc))
    if sched_fifo:
        report.requested["sched_fifo"] = priority
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            report.granted["sched_fifo"] = priority
        except (OSError, AttributeError) as exc:
            report.refused["sched_fifo"] = str(exc)
            log.warning("SCHED_FIFO refused; running at normal priority", priority=priority,
                        error=str(exc))
    if lock_memory:
        report.requested["lock_memory"] = True
        libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded
        # On fault: plain MCL_FUTURE populates every later mapping at once (numba's, 8 MiB
        # thread stacks), which here took a process from 180 to 500 MB resident and spent
        # ~150 ms in the kernel at SCHED_FIFO priority, stalling the other real-time runs on
        # the machine. The loop's pages are touched while warming up, then stay locked.
        if (libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0
                or libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0):  # a kernel before 4.4
            report.granted["lock_memory"] = True
        else:
            err = os.strerror(ctypes.get_errno())
            report.refused["lock_memory"] = err
            log.warning("mlockall refused", error=err)
    return report


def leave_realtime() -> int:
    """Put every thread of this process back to normal scheduling; return how many moved.

    Call it when the loop ends, before writing reports and exiting. A SCHED_FIFO thread is
    never preempted by another at its priority: a process tearing down at SCHED_FIFO
    (reports, interpreter exit, ~150 ms of CPU) stalls the other real-time runs on the
    machine for as long each time one ends.
    """
    moved = 0
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            if os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                moved += 1
        except OSError:  # the thread has ended meanwhile
            continue
    return moved


@contextmanager
def gc_quiet() -> Iterator[None]:
    """Collect and freeze start-up garbage, disable the collector inside, restore after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class CpuUsage:
    """Process CPU time against wall time over a stretch: the cost of spinning."""

    wall_s: float
    cpu_s: float

    @property
    def ratio(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class CpuMeter:
    def __init__(self) -> None:
        self._wall0 = time.monotonic()
        self._cpu0 = _cpu_s()

    def read(self) -> CpuUsage:
        return CpuUsage(time.monotonic() - self._wall0, _cpu_s() - self._cpu0)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime

"""Keep a SIGINT/SIGTERM that arrives while a process is still starting.

`hil-plant` and `hil-controller` spend their first second or more importing numpy, numba and
zmq and compiling kernels. With Python's default handlers a Ctrl-C (or `hil run`'s stop)
in that window raises KeyboardInterrupt out of an import and the process ends without its
report. Imported first by each entry point, this module notes the signal instead;
`StopFlag.install()` (hil/app/process.py) takes it over, so the loop ends at once, cleanly,
and the report is written as for any stop. The garbage collector runs rarely from then on:
start-up's collections walk objects that are never garbage. Standard library only, so it is
in place within milliseconds of the interpreter starting.
"""

from __future__ import annotations

import gc
import signal
import sys
from pathlib import Path

received: int | None = None
START_UP_GC_THRESHOLDS = (50_000, 20, 20)  # Python's defaults: (700, 10, 10)


def _note(signum: int, _frame: object) -> None:
    global received
    received = signum


def catch_if_started_as(*entry_points: str) -> bool:
    """Install the note-taking handlers if this process was started as one of `entry_points`
    (a console script's name, or a module's file for `python -m`); never when merely
    imported by another program such as a test runner. Returns whether it installed them."""
    if Path(sys.argv[0]).name not in entry_points and not any(
            sys.argv[0].endswith(entry) for entry in entry_points):
        return False
    catch()
    return True


def catch() -> None:
    """Install the note-taking handlers and start-up's collection thresholds (a program's
    first step: `catch_if_started_as`, or a program forked by `hil run`)."""
    global received
    received = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note)
    # Start-up makes ~140 k objects that live as long as the process (modules, numba's
    # caches, pydantic's schemas); the collections their allocation sets off every 700
    # allocations find almost nothing to free (~10 % of a plant's start-up CPU). Collect
    # every 50 000 instead: a cold numba compile's garbage is still freed. The loop runs
    # without the collector (hil.runtime.rt.gc_quiet collects once and freezes first).
    gc.set_threshold(*START_UP_GC_THRESHOLDS)

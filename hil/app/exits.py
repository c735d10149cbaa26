"""Exit statuses shared by every hil process and command, and how a program ends (standard
library only)."""

import gc
import sys
from typing import NoReturn

EXIT_OK = 0  # ran to the end; for `hil run`, the verdict is PASS
EXIT_FAULT = 1  # ended by a fault, or a gate failed
EXIT_USAGE = 2  # bad usage or config
EXIT_UNREACHABLE = 3  # the peer is unreachable or silent
EXIT_REFUSED = 4  # the peer refused us


def leave(code: int) -> NoReturn:
    """End the program with `code`, its work done and its files written and closed, without
    the interpreter's garbage collections at exit: they walk every object numba, NumPy and
    pydantic left (~140 k in a plant or controller), which cost a second or more of CPU per
    process after the run had ended (benchmarks/bench_exit.py). What
    the interpreter does at exit otherwise is kept: atexit handlers, flushing, closing."""
    gc.freeze()
    sys.exit(code)

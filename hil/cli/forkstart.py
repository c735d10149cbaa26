"""`hil run` starts hil-plant and hil-controller as forks of itself, which imported them once.

Each program spends most of its start-up importing NumPy, numba, SciPy, pydantic and ZeroMQ
(about 0.75 s of CPU each); forked from a parent that imported both, the two share that
work, and a run's processes cost about a quarter less CPU (benchmarks/bench_start.py). The
child is then the program as its console script runs it: its name (`hil-plant`, as `ps`,
`top`, `pgrep` and `pkill` show it), stop signals kept from its first instant
(hil/app/early_signals.py), its main() on the same arguments, its exit without the final
collections (hil/app/exits.py).

A fork copies only the thread that calls it, so `hil run` forks only while it runs no other
Python thread (with `--watch` it binds the live view's address first and starts the view's
thread after the forks; the children close that socket): otherwise, or with HIL_RUN_EXEC=1
in its environment, it starts the console scripts. The native threads of NumPy's and SciPy's
OpenBLAS are fork-safe (it stops and restarts its pool around a fork). The programs are named
by module, as the console scripts name them: `hil run` launches them, the library layers
below do not use them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Protocol

from hil.app import early_signals
from hil.app.exits import EXIT_FAULT, EXIT_USAGE
from hil.runtime.child import PidProcess

PROGRAMS = {"hil-plant": "plant_server.main", "hil-controller": "controller_client.main"}
EXEC_ENV = "HIL_RUN_EXEC"  # set to 1: start the console scripts, never fork
_STOPS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_NAME = 15


class Child(Protocol):
    """What `hil run` uses of a process it started: a Popen, or a forked PidProcess."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def can_fork() -> bool:
    """Whether this process may fork a program: Linux, no Python thread but this one, and
    not asked to start the console scripts (HIL_RUN_EXEC=1)."""
    return (sys.platform == "linux" and threading.active_count() == 1
            and os.environ.get(EXEC_ENV, "") != "1")


def preload(names: list[str]) -> None:
    """Import the programs `names` (keys of PROGRAMS) here, once, before forking them."""
    for name in names:
        importlib.import_module(PROGRAMS[name])


def fork_program(name: str, argv: list[str], env: Mapping[str, str],
                 not_theirs: Iterable[int] = ()) -> PidProcess:
    """Fork and run program `name`'s main(argv) in the child with `env` added to its
    environment, after it closed the descriptors `not_theirs` (the parent's, such as a
    listening socket, that the program must not hold open). Stop signals are held across the
    fork: the child takes them over as its program would, the parent gets back its own."""
    sys.stdout.flush()
    sys.stderr.flush()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    pid = os.fork()
    if pid == 0:
        for fd in not_theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        os._exit(_child(name, argv, env, held))
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return PidProcess(pid, name)


def _child(name: str, argv: list[str], env: Mapping[str, str], held: Iterable[int]
           ) -> int:
    """The forked program, from its first instant to its exit status (never returns into
    the parent's code: the caller ends the process)."""
    code = EXIT_FAULT
    try:
        early_signals.catch()  # a stop from now on is kept, as the console script keeps it
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        _set_name(name)
        os.environ.update(env)
        sys.argv = [name, *argv]
        gc.freeze()  # what the parent made is never garbage here: not walked, not copied
        main = importlib.import_module(PROGRAMS[name]).main
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BaseException:
        traceback.print_exc()
    finally:
        gc.freeze()  # exit without the final collections (hil/app/exits.py)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    return code


def _set_name(name: str) -> None:
    """The process's name as the kernel shows it (/proc/PID/comm: ps, top, pgrep, pkill)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)

"""A child process known by its pid (forked, or started with os.posix_spawn), with what its
parent uses of subprocess.Popen: poll, wait with a timeout, send_signal, kill."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from subprocess import TimeoutExpired

POLL_S = 0.005  # a wait with a timeout looks this often (waitpid has no timeout)


class PidProcess:
    """A child of this process: reaped by `poll` or `wait`, which set `returncode` (as
    Popen's: the exit status, or minus the signal that killed it)."""

    def __init__(self, pid: int, name: str = "child") -> None:
        self.pid = pid
        self.name = name  # for TimeoutExpired's message
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit status, as Popen.wait: TimeoutExpired if `timeout` passes first."""
        if timeout is None:
            if self.returncode is None:
                self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            return self.returncode
        give_up = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() >= give_up:
                raise TimeoutExpired(f"{self.name} {self.pid}", timeout)
            time.sleep(POLL_S)
        return code

    def send_signal(self, sig: int) -> None:
        """`sig` to the child unless it has been reaped (its pid may be another's by then)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

"""hil.runtime.child: a process known by its pid answers as subprocess.Popen does."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from hil.runtime.child import PidProcess


def test_a_pid_process_answers_as_popen_does_for_a_real_process() -> None:
    child = PidProcess(os.posix_spawn("/bin/sleep", ["sleep", "30"], os.environ))
    assert child.poll() is None and child.returncode is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    assert child.poll() == child.returncode == -signal.SIGTERM
    child.kill()  # ended and reaped: nothing to signal, no error


def test_a_wait_that_times_out_names_the_child() -> None:
    child = PidProcess(os.posix_spawn("/bin/sleep", ["sleep", "30"], os.environ), "writer")
    try:
        with pytest.raises(subprocess.TimeoutExpired, match=rf"writer {child.pid}"):
            child.wait(timeout=0.01)
    finally:
        child.kill()
        assert child.wait() == -signal.SIGKILL

"""A stop signal that arrives while hil-plant / hil-controller are still importing is kept:
the process stops cleanly and still writes its report (it used to die in an import)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.app import early_signals

BIN = Path(sys.executable).parent


def _loaded(pid: int, library: str) -> bool:
    """Whether process `pid` has mapped a shared library whose path holds `library`."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("entry", ["hil-plant", "hil-controller"])
def test_a_ctrl_c_during_start_up_ends_the_process_with_its_report(
        entry: str, tmp_path: Path, endpoint: str) -> None:
    proc = subprocess.Popen([str(BIN / entry), "--out", str(tmp_path), "--endpoint",
                             endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # numpy's core library is mapped by the first heavy import of each entry point,
        # seconds before its own stop handling is installed: Ctrl-C exactly then.
        give_up = time.monotonic() + 30
        while not _loaded(proc.pid, "_multiarray_umath"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < give_up, "numpy was not imported within 30 s"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "KeyboardInterrupt" not in err and "Traceback" not in err, err
    name = entry.removeprefix("hil-")
    report = json.loads((tmp_path / f"{name}.json").read_text())
    assert report["signal"] == "SIGINT"
    assert report["run_id"]


def test_imported_by_another_program_it_leaves_the_signal_handlers_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert early_signals.catch_if_started_as("hil-plant", "plant_server/main.py") is False
    assert signal.getsignal(signal.SIGTERM) is before

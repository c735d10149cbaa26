"""One real lockstep `hil run` for the whole session, made by the first test that asks.

Tests read what it left (recordings, report, HTML, plots, its history entry), or copy its
folder to have a folder that a run finished in. It is shared: read it, never change it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_endpoint

DURATION_S = 2.0


@dataclass(frozen=True)
class FinishedRun:
    out: Path  # the run folder
    history_db: Path  # the history the run appended its entry to (only this run's)
    done: subprocess.CompletedProcess[str]  # `hil run`'s exit status, stdout and stderr


_made: list[FinishedRun] = []


def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """The session's run: lockstep at 1 kHz for DURATION_S, with HTML, plots and a history
    entry in a history of its own (made on the first call)."""
    if not _made:
        folder = tmp_path_factory.mktemp("finished_run")
        db, config, out = folder / "history.db", folder / "run.yaml", folder / "run"
        config.write_text(f"record:\n  history_db: {db}\n")
        done = subprocess.run(
            [sys.executable, "-m", "hil.cli", "run", "--config", str(config), "--mode",
             "lockstep", "--duration", str(DURATION_S), "--endpoint", free_endpoint(),
             "--out", str(out)], capture_output=True, text=True, timeout=120)
        _made.append(FinishedRun(out, db, done))
    return _made[0]

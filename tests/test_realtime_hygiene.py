"""Real-time hygiene by default: a realtime run asks for SCHED_FIFO and locked memory; a
lockstep run (no deadlines, flat out) locks memory but stays at normal priority, where it
cannot starve the rest of the machine. Each process reports what it asked for and got."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import NO_HTML

ROOT = Path(__file__).resolve().parents[1]


def test_a_lockstep_run_does_not_ask_for_sched_fifo(tmp_path: Path, endpoint: str) -> None:
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "hil.cli", "run", *NO_HTML, "--mode",
                           "lockstep", "--duration", "3", "--endpoint", endpoint, "--out",
                           str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("plant", "controller"):
        realtime = json.loads((out / f"{name}.json").read_text())["realtime"]
        assert "sched_fifo" not in realtime["granted"] and "sched_fifo" not in realtime[
            "refused"], (name, realtime)
        asked = set(realtime["granted"]) | set(realtime["refused"])
        assert asked == {"lock_memory"}, (name, realtime)

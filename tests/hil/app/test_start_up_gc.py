"""hil-plant and hil-controller collect garbage rarely while they start (the collections
find nothing to free among the imports' objects); a program that merely imports them (a test
runner, a lab's script) keeps Python's own thresholds."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from hil.app import early_signals

PROBE = """
import gc, sys
sys.argv[0] = {argv0!r}
from hil.app import early_signals
early_signals.catch_if_started_as("hil-plant", "plant_server/main.py")
print(gc.get_threshold(), gc.isenabled())
"""


@pytest.mark.parametrize(("argv0", "expected"), [
    ("/venv/bin/hil-plant", early_signals.START_UP_GC_THRESHOLDS),
    ("/somewhere/lab_script.py", gc.get_threshold()),  # this interpreter's own, untouched
])
def test_only_a_started_hil_program_collects_rarely_and_never_stops_collecting(
        argv0: str, expected: tuple[int, int, int]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv0=argv0)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split(")")[0] + ")" == str(expected)
    assert done.stdout.strip().endswith("True")  # rarely, not never: a cold compile's garbage


def test_imported_here_the_thresholds_are_left_alone() -> None:
    before = gc.get_threshold()
    early_signals.catch_if_started_as("hil-plant", "plant_server/main.py")
    assert gc.get_threshold() == before

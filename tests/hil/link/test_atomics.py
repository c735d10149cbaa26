"""The doorbell's locked instructions (hil/link/atomics.py) on real shared memory: each bump
is one indivisible read-modify-write, so two processes bumping one word at full speed lose
none of each other's (a Python `+=` on the same word would), and the flag reads back."""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from hil.link import atomics

ROOT = Path(__file__).resolve().parents[3]
BUMPS = 100_000

_BUMPER = """
import sys
from multiprocessing import shared_memory, resource_tracker
import numpy as np
from hil.link import atomics
atomics.warm()
seg = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(seg._name, "shared_memory")
words = np.ndarray((2,), dtype=np.uint32, buffer=seg.buf)
address = int(words.ctypes.data)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    atomics.bump_then_read(address, address + 4)
del words
seg.close()
"""


def test_two_processes_bumping_one_word_lose_no_bump() -> None:
    seg = shared_memory.SharedMemory(create=True, size=8)
    try:
        words = np.ndarray((2,), dtype=np.uint32, buffer=seg.buf)
        words[:] = 0
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        bumpers = [subprocess.Popen([sys.executable, "-c", _BUMPER, seg.name, str(BUMPS)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env=env) for _ in range(2)]
        for bumper in bumpers:
            assert bumper.stdout is not None and bumper.stdout.readline().strip() == "ready"
        for bumper in bumpers:  # both start together
            assert bumper.stdin is not None
            bumper.stdin.write("go\n")
            bumper.stdin.flush()
        for bumper in bumpers:
            assert bumper.wait(timeout=120) == 0
        assert int(words[0]) == 2 * BUMPS
        del words
    finally:
        seg.close()
        seg.unlink()


def test_the_flag_reads_back_after_it_is_raised_and_the_bump_wraps() -> None:
    words = np.array([0xFFFFFFFF, 0], dtype=np.uint32)
    address = int(words.ctypes.data)
    assert atomics.bump_then_read(address, address + 4) is False
    assert int(words[0]) == 0  # wrapped
    atomics.raise_flag(address + 4)
    assert int(words[1]) == 1 and atomics.bump_then_read(address, address + 4) is True

"""Clock sync: a controller whose clock differs from the plant's still phase-locks to it.

Across machines the two processes read different clocks. The controller estimates the
offset from sync round trips right after the handshake; here its clock is shifted by
-7.3 s against a real hil-plant process, so without the estimate it would wait 7.3 s for its
first deadline and the plant's watchdog would trip (250 ms here, not the default 20, so that a
moment this shared machine holds either process is not taken for a missing clock sync).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from controller_client.controllers import create_controller
from controller_client.loop import ControllerLoop, LoopSettings
from hil.link.transport import ControllerSocket

BIN = Path(sys.executable).parent
SHIFT_NS = -7_300_000_000


def test_controller_with_a_shifted_clock_estimates_the_offset_and_keeps_deadlines(
        tmp_path: Path, endpoint: str) -> None:
    cfg = tmp_path / "plant.yaml"
    cfg.write_text("run:\n  duration_s: 1.0\nrecord:\n  enabled: false\n"
                   "plant:\n  watchdog_timeout_ms: 250\n")
    plant = subprocess.Popen([str(BIN / "hil-plant"), "--config", str(cfg), "--endpoint",
                              endpoint, "--out", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    law = create_controller("classical_smc")
    law.compute(np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]), 0.0)  # compile before the clock
    sock = ControllerSocket(endpoint)
    loop = ControllerLoop(
        law, sock, LoopSettings(phase_offset=0.3, spin_ns=150_000,
                                connect_timeout_ns=60_000_000_000, plant_timeout_ns=2_000_000_000),
        structlog.get_logger(), clock=lambda: time.monotonic_ns() + SHIFT_NS)
    try:
        reason = loop.run()
    finally:
        sock.close()
    plant.wait(timeout=60)
    report = loop.report()
    assert reason == "plant ended the run: duration"
    assert abs(report["clock"]["offset_ns"] + SHIFT_NS) < 2_000_000  # within 2 ms
    # The plant named its clock (this kernel's boot id), but ours is not that clock: synced.
    assert report["clock"]["same_clock"] is False and report["clock"]["sync_rtt_ns"] > 0
    assert report["latency_us"]["state_to_controller"]["p50"] < 5_000  # not 7.3 s
    p = json.loads((tmp_path / "plant.json").read_text())
    assert p["watchdog"]["trips"] == 0
    # Phase-locked to the plant's ticks: with the offset wrong by the 7.3 s shift it would
    # answer none in time. How many of the 1000 it answers is the machine's (this loop runs
    # in the test's own process, under coverage, beside another test): most of them.
    assert p["controls_applied"] > 500 and p["deadline"]["misses"] < 500
    assert 0 < p["latency_us"]["controller_to_plant"]["p50"] < 5_000

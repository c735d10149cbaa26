"""SIGKILL of the plant mid-run: the controller notices the silence within its timeout, ends
with a message saying so (exit 3) and still writes its report; the plant's recording keeps
all but the last ~100 ms."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from faultkit import (
    finish,
    free_endpoint,
    kill_all,
    recording,
    report,
    start_attached,
    write_config,
)

PLANT_TIMEOUT_MS = 300.0


@pytest.mark.realtime
def test_sigkill_of_the_plant_ends_the_controller_with_plant_silent(tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = free_endpoint()
    config = write_config(out, endpoint, run__duration_s=30.0,
                          controller__plant_timeout_ms=PLANT_TIMEOUT_MS)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(0.4)
        killed_ns = time.monotonic_ns()
        plant.send_signal(signal.SIGKILL)
        plant.wait()
        ccode, cerr = finish(controller)
        ended_ns = time.monotonic_ns()
    finally:
        kill_all(plant, controller)
    assert ccode == 3
    assert f"plant silent for {PLANT_TIMEOUT_MS:g} ms at {endpoint}" in cerr
    c = report(out, "controller")
    assert c["end_reason"].startswith("plant silent") and c["exit_code"] == 3
    # It noticed after its timeout, not before (and not long after: 5 s is only a bound for
    # a loaded machine's process exit).
    assert ended_ns - killed_ns >= PLANT_TIMEOUT_MS * 1e6
    assert ended_ns - killed_ns < 5e9
    assert not (out / "plant.json").exists()  # SIGKILL: no report, by design
    rec = recording(out)
    assert not rec.complete and rec.rows > 200
    assert killed_ns - rec["t_ns"][-1] < 200_000_000

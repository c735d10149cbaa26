"""A lockstep plant that the OS stops for a second is slow, not dead: the run goes on.

Lockstep is not real time; on a loaded machine a process can go a second without the CPU
(a whole `hil run` was ended by its controller's 500 ms silence limit that way, before the
plant's first state). In lockstep the controller waits `lockstep_plant_timeout_ms` (2 s), as
the plant's own lockstep watchdog waits for the controller; past it, the plant is dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import (
    child_pid,
    finish,
    free_endpoint,
    kill_all,
    report,
    wait_for_controlled_steps,
    wait_for_event,
    write_config,
)
from test_fault_hostile_peers import hil_run

STALL_S = 1.2  # past the realtime limit (500 ms), within the lockstep one (2 s)


def _stall_the_plant_mid_run(out: Path, run: subprocess.Popen[str], stall_s: float) -> None:
    """Once the plant has recorded 200 controlled steps, stop it for `stall_s` (SIGSTOP: the
    OS not running it), then let it go on."""
    wait_for_controlled_steps(out, 200, run)
    plant = child_pid(run.pid, "plant")
    os.kill(plant, signal.SIGSTOP)
    try:
        time.sleep(stall_s)  # the stall itself, not a wait for an event
    finally:
        os.kill(plant, signal.SIGCONT)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_a_plant_stopped_for_a_second_is_waited_out_in_lockstep_only(
        mode: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__mode=mode, run__duration_s=30.0,
                          plant__watchdog_timeout_ms=250)
    run = hil_run(config, out)
    try:
        wait_for_event(out, "plant", "controller attached", run)
        _stall_the_plant_mid_run(out, run, STALL_S)
        code, err = finish(run, timeout_s=120 if mode == "lockstep" else 30)
    finally:
        kill_all(run)
    controller = report(out, "controller")
    if mode == "lockstep":
        assert code in (0, 1), err  # PASS or FAIL: a run that ended, not one cut short
        assert controller["end_reason"] == "plant ended the run: duration", controller
        assert report(out, "plant")["end_reason"] == "duration"
    else:  # real time: 1.2 s of silence is a dead plant, and the controller says so
        assert controller["end_reason"].startswith("plant silent for 500 ms"), controller

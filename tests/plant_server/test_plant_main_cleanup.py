"""hil-plant releases what it opened when start-up fails after the rig is open: the serial
port (opened exclusively), its reader thread and the ZeroMQ socket (issue 10, defect 7)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial
import zmq
from conftest import free_endpoint
from rigkit import EmulatedRig, rig_config

from hil.app import logs
from hil.app.process import ProcessContext, StopFlag
from hil.config import load_config
from plant_server.main import _serve

ROOT = Path(__file__).resolve().parents[2]


def test_a_start_up_failure_after_the_rig_opened_releases_port_thread_and_socket(
        tmp_path: Path) -> None:
    with EmulatedRig(rig_config(tmp_path), tmp_path / "rig") as rig:
        endpoint = free_endpoint()
        config = load_config(rig_config(tmp_path), {
            "rig_emulator.enabled": False, "serial.port": rig.port, "plant.endpoint": endpoint,
            "realtime.sched_fifo": False, "realtime.lock_memory": False})
        out = tmp_path / "run"
        (out / "plant.rec").mkdir(parents=True)  # the recorder cannot open its file
        log = logs.configure("plant", "warning", out, stream=io.StringIO())
        ctx = ProcessContext("plant", config, out, "r1", log, StopFlag())
        with pytest.raises(OSError):
            _serve(ctx)
        assert not [t for t in threading.enumerate() if t.name.startswith("serial-reader")]
        # The port's exclusive lock and the endpoint are free again.
        serial.Serial(rig.port, 115_200, exclusive=True).close()
        assert bind_within(endpoint, timeout_s=5.0)  # ZeroMQ unbinds in its I/O thread


def bind_within(endpoint: str, timeout_s: float) -> bool:
    """True once `endpoint` can be bound: its socket was closed (the unbind is asynchronous)."""
    give_up = time.monotonic() + timeout_s
    with zmq.Context() as context:
        while True:
            with context.socket(zmq.ROUTER) as sock:
                sock.linger = 0
                try:
                    sock.bind(endpoint)
                    return True
                except zmq.ZMQError:
                    if time.monotonic() > give_up:
                        return False
            time.sleep(0.02)


FAILING_PLANT = """import numpy as np
class Plant:
    state_names = ('x', 'v')
    state_units = ('m', 'm/s')
    input_limit = 5.0
    calls = 0
    def derivatives(self, state, u):
        Plant.calls += 1
        if Plant.calls > 4000:
            raise RuntimeError('the lab model broke')
        return np.array([state[1], u])
"""

LAW = """class Law:
    gain_names = ('k',)
    default_gains = (1.0,)
    def __init__(self, gains, **context):
        self.k = gains[0]
    def compute(self, state, t):
        return -self.k * float(state[0]) - float(state[1])
"""


def test_an_error_in_the_plant_loop_keeps_the_whole_report_and_the_safe_output(
        tmp_path: Path) -> None:
    """A lab's plant model that raises mid-run: the plant applies its safe output and its
    report keeps every figure it measured until then, with the error and its traceback."""
    (tmp_path / "lab_plant.py").write_text(FAILING_PLANT)
    (tmp_path / "lab_law.py").write_text(LAW)
    config = tmp_path / "lab.yaml"
    endpoint = free_endpoint()
    config.write_text(
        f'plant: {{model: "lab_plant:Plant", initial_state: [0.1, 0.0], endpoint: "{endpoint}"}}\n'
        f'controller: {{name: "lab_law:Law", endpoint: "{endpoint}"}}\n'
        "run: {mode: lockstep, duration_s: 5.0}\nrecord: {html: false, history_db: null}\n")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "hil.cli", "run", "--config", str(config),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    plant = json.loads((out / "plant.json").read_text())
    assert plant["end_reason"] == "error: RuntimeError: the lab model broke"
    assert "RuntimeError: the lab model broke" in plant["error"]
    assert plant["safe_state"] is True and plant["exit_code"] == 1
    # What the loop measured before the error is all there.
    assert plant["cycles"] > 100 and plant["controls_applied"] > 100
    assert plant["latency_us"]["round_trip"]["count"] > 100 and plant["histograms"]

"""hil-plant releases what it opened when start-up fails after the rig is open: the serial
port (opened exclusively), its reader thread and the ZeroMQ socket (issue 10, defect 7)."""

from __future__ import annotations

import io
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

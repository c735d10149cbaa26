"""Injected clocks reach the rate limiters: the controller loop's warnings and the serial
bridge's rejected-frame log are throttled on the clock they were given, not the wall clock
(issue 10, defect 8). A manual clock that jumps 2 s between two events lets both through
(one interval is 1 s) although almost no wall time passed; on the wall clock the second
would be suppressed."""

from __future__ import annotations

import numpy as np
import structlog
from scripted_plant import LoopThread, ScriptedPlant
from structlog.testing import capture_logs

from controller_client.controllers import create_controller
from controller_client.loop import ControllerLoop, LoopSettings
from hil.dynamics import create_model
from hil.link.transport import ControllerSocket
from plant_server.backends.serial import SerialBackend

JUMP_NS = 2_000_000_000  # two rate-limit intervals


class ManualClock:
    def __init__(self) -> None:
        self.now_ns = 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns


def test_the_controller_loop_throttles_warnings_on_its_injected_clock(endpoint: str) -> None:
    clock = ManualClock()
    plant = ScriptedPlant(endpoint)
    sock = ControllerSocket(endpoint)
    loop = ControllerLoop(create_controller("classical_smc"), sock,
                          LoopSettings(phase_offset=0.3, spin_ns=0,
                                       connect_timeout_ns=60 * JUMP_NS,
                                       plant_timeout_ns=60 * JUMP_NS),
                          structlog.get_logger(), clock=clock)
    try:
        with capture_logs() as logs:
            running = LoopThread(loop)
            plant.welcome(n_states=6)
            plant.serve_syncs()  # an injected clock is not the plant's: synced
            # The plant's `fault` notices are rate-limited (a latched safe state is logged
            # once per latch instead, see tests/test_open_runtime_units.py). A gains_get after
            # each is answered once the notice before it was taken.
            for seq in (0, 1):
                plant.send("fault", "estop", f"notice {seq}")
                plant.send("gains_get", seq, "test")
                assert plant.expect("gains_reply")["request_id"] == seq
                clock.now_ns += JUMP_NS
            plant.send("bye", "duration")
            running.join()
    finally:
        sock.close()
        plant.close()
    assert running.reason == "plant ended the run: duration", running.error
    warnings = [e for e in logs if e["event"] == "plant fault"]
    assert [e["detail"] for e in warnings] == ["notice 0", "notice 1"]


def test_the_serial_bridge_throttles_rejected_frame_logs_on_its_injected_clock() -> None:
    clock = ManualClock()
    backend = SerialBackend(create_model("dip"), "/dev/null-unopened", 115_200, 100.0,
                            log=structlog.get_logger(), clock=clock)
    damaged = b"\x05abcd\x00"  # a frame shorter than its header and CRC
    with capture_logs() as logs:
        for _ in range(2):
            backend._receive(damaged, clock())  # what the reader thread does with bytes read
            clock.now_ns += JUMP_NS
    rejected = [e for e in logs if e["event"] == "serial frame rejected"]
    assert len(rejected) == 2 and all(e["reason"] == "length" for e in rejected)
    assert backend.report()["framing_errors"] == 2
    assert np.array_equal(backend.state, np.zeros(6))  # nothing reached the state

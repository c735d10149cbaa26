"""The plant server's safety behaviour, driven message by message with a mock clock.

Hostile input from the attached controller and from other peers is rejected and counted by
kind, logged at most once a second per kind, never reaches the actuator and never disturbs
the attached controller. The watchdog, a NaN control and the safety gates latch the safe
output until a clear; an e-stop, a stop signal and the controller's bye apply it first.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from hil.dynamics.inputs import Inputs
from hil.link import messages as msg
from hil.runtime.deadline_gates import DeadlineGates, DeadlineGateSettings
from plant_server.loops import stopping
from plant_server.safety import SafetyLimits
from plant_server.server import PlantServer, PlantSettings

A, B, C = b"controller-a", b"stranger-b", b"newcomer-c"
MS = 1_000_000
NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]
UNITS = ["m", "rad", "rad", "m/s", "rad/s", "rad/s"]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000 * MS

    def __call__(self) -> int:
        return self.t


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, msg.Message]] = []

    def send(self, peer: bytes, payload: bytes) -> None:
        self.sent.append((peer, msg.decode(payload)))

    def to(self, peer: bytes, kind: str) -> list[msg.Message]:
        return [m for p, m in self.sent if p == peer and m.kind == kind]


class FakeBackend:
    """Records what reaches the actuator: one list of inputs per apply. A description of one
    force of +-150 N, or of the inputs `inputs` names."""

    sim_time_ns = 0
    fault = None

    def align_start_ns(self, t_ns: int) -> int:
        return t_ns

    def __init__(self, inputs: Inputs | None = None) -> None:
        self.state = np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0])
        self.applied: list[list[float]] = []
        self.inputs = inputs

    def describe(self) -> dict[str, Any]:
        states = {"state_names": NAMES, "state_units": UNITS, "equilibrium": [0.0] * 6,
                  "regulated": ["theta1", "theta2"], "wraps": ["theta1", "theta2"]}
        if self.inputs is None:  # one force of +-150 N
            return {"name": "fake", **states, **Inputs.single("force", "N", 150.0).describe()}
        return {"name": "fake2", **states, **self.inputs.describe()}

    def apply(self, u: list[float], t_ns: int) -> None:
        self.applied.append(list(u))


FORCE = Inputs.single("force", "N", 150.0)
TWO = Inputs(("thrust_left", "thrust_right"), ("N", "N"), (0.0, 0.0), (40.0, 40.0))


def make(mode: str = "realtime", inputs: Inputs | None = None,
         **limits: Any) -> tuple[PlantServer, FakeSocket, Clock]:
    clock = Clock()
    sock = FakeSocket()
    safety = SafetyLimits(inputs or FORCE, 10.0, **limits) if limits else None
    settings = PlantSettings(mode=mode, period_ns=MS, duration_s=1.0, start_delay_ns=0,
                             watchdog_timeout_ns=20 * MS, attach_timeout_ns=1000 * MS,
                             safety=safety)
    server = PlantServer(FakeBackend(inputs), sock, settings, structlog.get_logger(),
                         clock=clock)
    return server, sock, clock


def attached(inputs: Inputs | None = None) -> tuple[PlantServer, FakeSocket, Clock]:
    """A server with controller A attached, the watchdog armed and state 0 published."""
    server, sock, clock = make(inputs=inputs)
    server.handle(A, msg.encode("hello", msg.PROTOCOL_VERSION, "a"), clock())
    server.guard.watchdog.arm()
    server.publish(0)
    return server, sock, clock


def control(seq: int, u: float | list[float], state_seq: int = 0) -> bytes:
    """A control of the input vector `u` (a number: the one input of a one-input plant)."""
    return msg.pack_control(seq, state_seq, u if isinstance(u, list) else [u], 0, 0, 0)


def raw(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


HOSTILE = [
    ("malformed msgpack", A, b"\xc1\xff\x00", "malformed"),
    ("not an array", A, raw({"kind": "control"}), "malformed"),
    ("unknown kind", A, raw(["launch", 1]), "unknown_kind"),
    ("wrong arity", A, raw(["control", 1, 0, [3.0]]), "bad_arity"),
    ("input as a string", A, raw(["control", 1, 0, ["3.0"], 0, 0, 0]), "bad_type"),
    ("u as a string", A, raw(["control", 1, 0, "3.0", 0, 0, 0]), "bad_type"),
    ("u as one number (protocol 1)", A, raw(["control", 1, 0, 3.0, 0, 0, 0]), "bad_type"),
    ("seq as a float", A, raw(["control", 1.5, 0, [3.0], 0, 0, 0]), "bad_type"),
    ("no input", A, raw(["control", 1, 0, [], 0, 0, 0]), "bad_shape"),
    ("nine inputs", A, control(1, [1.0] * 9), "bad_shape"),
    ("two inputs to a one-input plant", A, control(1, [1.0, 2.0]), "bad_shape"),
    ("state with a bad shape", A, raw(["state", 1, 0, [], 0]), "bad_shape"),
    ("a state sent to the plant", A, msg.pack_state(1, 0, [0.0] * 6, 0), "unexpected_kind"),
    ("huge input", A, control(1, 1e9), "implausible_input"),
    ("negative huge input", A, control(1, -2000.0), "implausible_input"),
    ("answer to a state never sent", A, control(1, 1.0, state_seq=99), "bad_state_seq"),
    ("negative state seq", A, control(1, 1.0, state_seq=-1), "bad_state_seq"),
    ("oversized frame", A, raw(["bye", "x" * 8000]) * 3, "oversized"),
    ("control from a stranger", B, control(1, 10.0), "unattached_peer"),
    ("NaN from a stranger", B, control(1, math.nan), "non_finite"),
    ("clear from a stranger", B, msg.encode("clear"), "unattached_peer"),
    ("bye from a stranger", B, msg.encode("bye", "x"), "unattached_peer"),
    ("a second controller", B, msg.encode("hello", msg.PROTOCOL_VERSION, "b"),
     "already_attached"),
    ("a wrong protocol version", B, msg.encode("hello", 99, "b"), "version_mismatch"),
    ("a protocol 1 hello", B, msg.encode("hello", 1, "b"), "version_mismatch"),
]


@pytest.mark.parametrize(("name", "peer", "data", "kind"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_rejected_by_kind_and_never_reaches_the_actuator(
        name: str, peer: bytes, data: bytes, kind: str) -> None:
    server, _sock, clock = attached()
    server.handle(peer, data, clock())
    assert server.counters.rejected_by_kind == {kind: 1}
    assert server.backend.applied == []
    assert server.safe_reason is None and server.peer == A
    # The attached controller is not disturbed: its next control is applied.
    server.handle(A, control(1, 12.5), clock())
    assert server.backend.applied == [[12.5]]


def test_a_replayed_or_stale_control_is_rejected() -> None:
    server, _sock, clock = attached()
    for data in (control(5, 1.0), control(5, 2.0), control(4, 3.0), control(6, 4.0)):
        server.handle(A, data, clock())
    assert server.backend.applied == [[1.0], [4.0]]
    assert server.counters.rejected_by_kind == {"stale_control": 2}


def test_a_second_controller_is_refused_with_a_message_saying_already_attached() -> None:
    server, sock, clock = attached()
    server.handle(B, msg.encode("hello", msg.PROTOCOL_VERSION, "b"), clock())
    (refusal,) = sock.to(B, "refuse")
    assert refusal["code"] == "already_attached" and "already attached" in refusal["reason"]


def test_inputs_between_the_limit_and_the_sanity_bound_are_saturated() -> None:
    server, _sock, clock = attached()
    server.handle(A, control(1, 400.0), clock())
    assert server.backend.applied == [[150.0]] and server.report()["saturations"] == 1


def test_a_protocol_1_controller_is_refused_naming_both_versions() -> None:
    assert msg.PROTOCOL_VERSION == 2
    server, sock, clock = make()
    server.handle(A, msg.encode("hello", 1, "old"), clock())
    (refusal,) = sock.to(A, "refuse")
    assert refusal["code"] == "version_mismatch"
    assert refusal["reason"] == ("protocol version mismatch: controller speaks 1, plant "
                                 "speaks 2")
    assert not sock.to(A, "welcome") and server.peer is None
    server.handle(A, msg.encode("hello", msg.PROTOCOL_VERSION, "new"), clock())
    assert sock.to(A, "welcome") and server.peer == A


@pytest.mark.parametrize(("inputs", "u", "names"), [
    (None, [1.0, 2.0], "1 inputs ['force']"),
    (TWO, [10.0], "2 inputs ['thrust_left', 'thrust_right']"),
    (TWO, [10.0, 10.0, 10.0], "2 inputs ['thrust_left', 'thrust_right']"),
], ids=["2-to-1", "1-to-2", "3-to-2"])
def test_a_control_of_the_wrong_count_is_bad_shape_naming_the_plants_inputs(
        inputs: Inputs | None, u: list[float], names: str) -> None:
    server, _sock, clock = attached(inputs)
    with capture_logs() as logs:
        server.handle(A, control(1, u), clock())
    assert server.counters.rejected_by_kind == {"bad_shape": 1}
    (line,) = [e for e in logs if e["event"] == "message rejected"]
    assert line["detail"] == f"control.u has {len(u)} entries; the plant has {names}"
    assert server.backend.applied == [] and server.safe_reason is None
    # Refused, not applied: it does not feed the watchdog, and the next good control is taken.
    good = [12.5] * (1 if inputs is None else inputs.n)
    server.handle(A, control(2, good), clock())
    assert server.backend.applied == [good]


def test_a_two_input_plant_applies_each_input_within_its_own_bounds() -> None:
    server, _sock, clock = attached(TWO)
    assert server.description()["input_names"] == ["thrust_left", "thrust_right"]
    server.handle(A, control(1, [10.0, 30.0]), clock())
    server.handle(A, control(2, [-5.0, 50.0]), clock())
    assert server.backend.applied == [[10.0, 30.0], [0.0, 40.0]]
    assert server.report()["saturations"] == 1
    server.handle(A, control(3, [10.0, 401.0]), clock())  # beyond 10 x 40
    assert server.counters.rejected_by_kind == {"implausible_input": 1}
    assert server.backend.applied == [[10.0, 30.0], [0.0, 40.0]]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_second_input_trips_the_non_finite_gate(bad: float) -> None:
    server, _sock, clock = attached(TWO)
    server.handle(A, control(1, [10.0, 20.0]), clock())
    clock.t += 3 * MS
    server.handle(A, control(2, [10.0, bad]), clock())
    assert server.backend.applied == [[10.0, 20.0], [0.0, 0.0]]  # each input off, at once
    assert server.safe_reason == "safety: non_finite_control"
    (event,) = server.report()["safety"]["events"]
    assert event["gate"] == "non_finite_control" and event["value"] == repr(bad)
    assert server.counters.rejected_by_kind == {"non_finite": 1}


def test_rejections_are_logged_at_most_once_a_second_per_kind() -> None:
    server, _sock, clock = attached()
    with capture_logs() as logs:
        for _ in range(500):
            server.handle(B, b"\xc1", clock())
            server.handle(B, control(1, 1.0), clock())
            clock.t += MS  # 1000 messages over 0.5 s
        clock.t += 600 * MS
        server.handle(B, b"\xc1", clock())
    lines = [e for e in logs if e["event"] == "message rejected"]
    assert [e["kind"] for e in lines] == ["malformed", "unattached_peer", "malformed"]
    assert lines[2]["suppressed"] == 499
    assert server.report()["rejected_messages"] == 1001


def test_a_nan_control_from_the_controller_trips_the_non_finite_gate_and_latches() -> None:
    server, sock, clock = attached()
    server.handle(A, control(1, 10.0), clock())
    clock.t += 3 * MS
    server.handle(A, control(2, math.nan), clock())
    assert server.backend.applied == [[10.0], [0.0]]  # the safe output, at once
    assert server.safe_reason == "safety: non_finite_control"
    (event,) = server.report()["safety"]["events"]
    assert event["gate"] == "non_finite_control" and event["value"] == "nan"
    assert event["t_ns"] == clock()
    server.publish(server.flags())
    assert sock.to(A, "state")[-1]["flags"] & msg.FLAG_SAFE
    # Valid controls feed the watchdog but are not applied until a clear.
    for seq in range(3, 8):
        clock.t += MS
        server.handle(A, control(seq, 5.0, state_seq=1), clock())
    assert server.backend.applied == [[10.0], [0.0]]
    assert server.report()["controls_while_safe"] == 5 and not server.guard.watchdog.latched
    server.handle(A, msg.encode("clear"), clock())
    server.handle(A, control(8, 7.0, state_seq=1), clock())
    assert server.backend.applied == [[10.0], [0.0], [7.0]]
    assert server.report()["safety"]["clear_events"][0]["cleared"] == (
        "safety: non_finite_control")


def test_watchdog_expiry_applies_the_safe_output_and_measures_time_to_safe() -> None:
    server, _sock, clock = attached()
    server.handle(A, control(1, 30.0), clock())
    last_valid = clock()
    clock.t += 19 * MS
    server.check_watchdog(clock())
    assert server.safe_reason is None
    clock.t += MS + 150_000  # checked 0.15 ms after the deadline
    server.check_watchdog(clock())
    assert server.backend.applied == [[30.0], [0.0]]
    wd = server.report()["watchdog"]
    assert wd["trips"] == 1 and wd["latched"]
    assert wd["worst_time_to_safe_ms"] == pytest.approx((clock() - last_valid) / MS)
    assert wd["events"][0]["time_to_safe_ms"] == pytest.approx(20.15)
    # It never clears by itself: late controls are ignored, time passes, still latched.
    clock.t += 5_000 * MS
    server.handle(A, control(2, 30.0), clock())
    server.check_watchdog(clock())
    assert server.guard.watchdog.latched and server.backend.applied == [[30.0], [0.0]]
    assert server.report()["safe_state"] is True


def test_a_new_controller_replaces_one_lost_to_the_watchdog_and_finds_the_plant_latched() -> None:
    server, sock, clock = attached()
    clock.t += 25 * MS
    server.check_watchdog(clock())
    server.handle(C, msg.encode("hello", msg.PROTOCOL_VERSION, "c"), clock())
    (welcome,) = sock.to(C, "welcome")
    assert welcome["description"]["safe_state"] is True
    assert server.peer == C
    server.handle(C, control(1, 3.0), clock())
    assert server.backend.applied == [[0.0]]  # latched: not applied
    server.handle(C, msg.encode("clear"), clock())
    server.handle(C, control(2, 3.0), clock())
    assert server.backend.applied == [[0.0], [3.0]]
    # The lost controller, should it come back, is a stranger now.
    server.handle(A, control(9, 99.0), clock())
    assert server.counters.rejected_by_kind == {"unattached_peer": 1}


def test_operator_clear_is_acknowledged_from_any_peer() -> None:
    server, sock, clock = attached()
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == "nothing to clear"
    clock.t += 30 * MS
    server.check_watchdog(clock())
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == "cleared: watchdog"
    assert server.safe_reason is None and not server.guard.watchdog.latched


def test_estop_from_any_peer_goes_safe_first_tells_everyone_and_ends_the_run() -> None:
    server, sock, clock = attached()
    server.handle(A, control(1, 40.0), clock())
    server.handle(B, msg.encode("estop", "smoke"), clock())
    assert server.backend.applied == [[40.0], [0.0]]
    assert sock.to(B, "ack")[0]["what"] == "estop"
    assert sock.to(A, "fault")[0]["detail"] == "smoke"
    assert stopping(server, clock()) and server.end_reason == "estop: smoke"
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == "cannot clear: estop: smoke"


def test_a_stop_signal_applies_the_safe_output_before_ending() -> None:
    server, _sock, clock = attached()
    server.handle(A, control(1, 40.0), clock())
    server.stop_requested = lambda: True
    assert stopping(server, clock())
    assert server.backend.applied == [[40.0], [0.0]]
    assert server.end_reason == "stopped" and server.report()["safe_state"] is True


def test_the_controllers_bye_applies_the_safe_output_at_once() -> None:
    server, _sock, clock = attached()
    server.handle(A, control(1, 40.0), clock())
    server.handle(A, msg.encode("bye", "stopped"), clock())
    assert server.backend.applied == [[40.0], [0.0]] and server.ending


def test_a_state_beyond_the_track_trips_and_the_fall_after_it_is_no_new_trip() -> None:
    server, _sock, clock = make(track_limit_m=1.0, angle_limit_rad=0.5)
    server.handle(A, msg.encode("hello", msg.PROTOCOL_VERSION, "a"), clock())
    server.state = np.array([1.5, 0.1, 0.0, 0.0, 0.0, 0.0])
    server.check_state(clock())
    assert server.safe_reason == "safety: track" and server.backend.applied == [[0.0]]
    server.state = np.array([1.5, 1.5, 0.0, 0.0, 0.0, 0.0])
    server.check_state(clock())
    assert server.report()["safety"]["trips"] == 1


def test_braking_follows_the_carts_speed_while_safe() -> None:
    server, _sock, clock = make(braking="cart_brake", brake_n_per_mps=10.0)
    server.handle(A, msg.encode("hello", msg.PROTOCOL_VERSION, "a"), clock())
    server.state = np.array([0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    server.go_safe("test", clock())
    server.state = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    server.check_state(clock())
    assert server.backend.applied == [[-20.0], [-10.0]]


def test_a_safe_stop_deadline_gate_trips_the_plant() -> None:
    server, _sock, clock = attached()
    server.guard.scorer.gates = DeadlineGates(
        DeadlineGateSettings(100, 0.5, "warn", 3, "safe_stop"))
    server.handle(A, control(1, 1.0), clock())  # the start-up is over: deadlines count
    for _ in range(4):
        server.score_deadline(False, clock())
    assert server.safe_reason == "safety: deadline_consecutive_misses"
    assert server.report()["safety"]["events"][0]["value"] == 4


def test_after_a_cleared_trip_the_working_controller_drives_and_a_newcomer_is_refused() -> None:
    server, sock, clock = attached()
    clock.t += 25 * MS
    server.check_watchdog(clock())  # A was lost: it let the watchdog expire
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == "cleared: watchdog"
    server.handle(C, msg.encode("hello", msg.PROTOCOL_VERSION, "c"), clock())
    assert sock.to(C, "refuse")[0]["code"] == "already_attached" and not sock.to(C, "welcome")
    server.handle(A, control(1, 12.0), clock())
    assert server.peer == A and server.backend.applied == [[0.0], [12.0]]
    assert server.safe_reason is None and "unattached_peer" not in server.counters.rejected_by_kind


def test_the_controller_a_newcomer_replaced_is_told_and_its_controls_refused() -> None:
    server, sock, clock = attached()
    clock.t += 25 * MS
    server.check_watchdog(clock())
    server.handle(C, msg.encode("hello", msg.PROTOCOL_VERSION, "c"), clock())
    (bye,) = sock.to(A, "bye")
    assert bye["reason"].startswith("replaced")
    assert server.report()["session"] == {"phase": "attached", "replacements": 1}


def test_a_clear_is_refused_while_the_state_still_breaches_its_gate() -> None:
    server, sock, clock = make(track_limit_m=1.0)
    server.handle(A, msg.encode("hello", msg.PROTOCOL_VERSION, "a"), clock())
    server.state = np.array([1.5, 0.1, 0.0, 0.0, 0.0, 0.0])
    server.check_state(clock())
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == (
        "cannot clear: safety: track: track still holds (1.5 beyond 1)")
    assert server.safe_reason == "safety: track"
    server.state = np.array([0.9, 0.1, 0.0, 0.0, 0.0, 0.0])  # back within the track
    server.handle(B, msg.encode("operator_clear", "op"), clock())
    assert sock.to(B, "ack")[-1]["detail"] == "cleared: safety: track"
    assert server.safe_reason is None


def test_a_finite_but_implausible_state_trips_its_own_gate() -> None:
    server, _sock, clock = attached()
    server.state = np.array([0.0, 0.1, -0.05, 0.0, 1e30, 0.0])
    server.check_state(clock())
    assert server.safe_reason == "safety: implausible_state"
    (event,) = server.report()["safety"]["events"]
    assert (event["gate"], event["value"], event["limit"]) == ("implausible_state", 1e30, 1e6)


def test_the_start_up_is_not_scored_and_deadlines_count_from_the_first_control() -> None:
    server, _sock, clock = attached()
    for _ in range(3):
        server.score_deadline(False, clock())
    server.handle(A, control(1, 1.0), clock())
    server.score_deadline(True, clock())
    server.score_deadline(False, clock())
    deadline = server.report()["deadline"]
    assert (deadline["total"], deadline["misses"], deadline["before_first_control"]) == (2, 1, 3)


def test_an_oversized_gains_request_is_answered_with_a_refusal_not_left_waiting() -> None:
    server, sock, clock = attached()
    request = raw(["gains_set", 7, "op", [], [1.0] * 2000])
    assert len(request) > msg.MAX_MESSAGE_BYTES
    server.handle(B, request, clock())
    (reply,) = sock.to(B, "gains_reply")
    assert (reply["request_id"], reply["ok"]) == (7, False)
    assert f"over the protocol's {msg.MAX_MESSAGE_BYTES}" in reply["detail"]
    assert server.counters.rejected_by_kind == {"oversized": 1}
    assert not sock.to(A, "gains_set")  # nothing reached the controller

"""Every message the plant rejects is answered (docs/protocol.md, section 7), on a real plant:
a PlantServer running its own loop (plant_server/loops.py) in a thread, on a real loopback
socket, with a controller and strangers on real DEALER sockets.

Each malformed input gets a `refuse` (a hello) or an `error` naming the rule broken, within
a bounded wait; the lockstep run it is thrown at ends by its duration with every state
answered, as a run without them does. A flood from one peer is answered within that peer's
budget only, and does not cost another peer its answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgpack
import numpy as np
import pytest
import structlog
import zmq

from hil.dynamics import create_model
from hil.link import messages as msg
from hil.link.transport import PlantSocket
from plant_server.answers import ANSWER_BURST, ANSWERS_PER_S
from plant_server.backends import SimBackend
from plant_server.loops import run
from plant_server.server import PlantServer, PlantSettings

MS = 1_000_000
STEPS = 60  # lockstep steps of the run the malformed inputs are thrown at
ANSWER_WAIT_S = 2.0  # the bounded wait for each answer
V = msg.PROTOCOL_VERSION


def _p(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


@dataclass
class Plant:
    """A lockstep cart-pole plant serving on `endpoint`, its loop in a thread."""

    server: PlantServer
    thread: threading.Thread
    ctx: zmq.Context
    end: list[str] = field(default_factory=list)

    def dealer(self) -> zmq.Socket:
        return _dealer(self.ctx, self.server.sock.endpoint)


@pytest.fixture
def plant(endpoint: str, request: pytest.FixtureRequest) -> Iterator[Plant]:
    """Lockstep (STEPS steps) unless the test asks for "realtime" (1 kHz, until a bye)."""
    mode = getattr(request, "param", "lockstep")
    model = create_model("cartpole", {}, substeps=1)
    initial = np.array([0.0, 0.05, 0.0, 0.0])
    model.step(initial, np.zeros(1), 1e-3, np.empty_like(initial))  # compiled before the run
    settings = PlantSettings(mode=mode, period_ns=MS,
                             duration_s=STEPS * 1e-3 if mode == "lockstep" else 60.0,
                             start_delay_ns=0, watchdog_timeout_ns=5000 * MS,
                             attach_timeout_ns=10_000 * MS)
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    server = PlantServer(SimBackend(model, initial, MS), sock, settings,
                         structlog.get_logger())
    end: list[str] = []
    thread = threading.Thread(target=lambda: end.append(run(server)), daemon=True)
    thread.start()
    ctx = zmq.Context()
    try:
        yield Plant(server, thread, ctx, end)
    finally:
        operator = _dealer(ctx, sock.endpoint)  # kept open until the plant has ended
        try:
            if thread.is_alive():  # an e-stop ends any wait at once (a stop only after it)
                operator.send(msg.encode("estop", "test over"))
            thread.join(10)
        finally:
            ctx.destroy(linger=0)
            sock.close()
        assert not thread.is_alive()


def answer_to(sock: zmq.Socket, kind: str, kept: list[msg.Message] | None = None
              ) -> tuple[msg.Message, float]:
    """The first `kind` message on `sock` within ANSWER_WAIT_S, and how long it took (s);
    messages of other kinds are kept in `kept`."""
    start = time.monotonic()
    while (left := ANSWER_WAIT_S - (time.monotonic() - start)) > 0:
        if sock.poll(max(1, int(left * 1000))):
            m = msg.decode(sock.recv())
            if m.kind == kind:
                return m, time.monotonic() - start
            if kept is not None:
                kept.append(m)
    raise AssertionError(f"no {kind} within {ANSWER_WAIT_S} s")


# (what, the frames a stranger sends, the answer's kind, code, words the answer must hold)
FROM_A_STRANGER = [
    ("control before hello", [msg.pack_control(1, 0, [1.0], 0, 0, 0)], "error",
     "unattached_peer", "control from a peer other than the controller"),
    ("malformed hello (truncated)", [b"\x93\xa5hello\x02"], "refuse", "malformed",
     "not msgpack"),
    ("hello with a float where an int goes", [_p(["hello", 2.0, "x"])], "refuse", "bad_type",
     "hello.protocol has type float"),
    ("hello with its name as bin, not str", [_p(["hello", V, b"x"])], "refuse", "malformed",
     "bin is not accepted"),
    ("hello missing a field", [_p(["hello", V])], "refuse", "bad_arity",
     "hello takes 2 fields, got 1"),
    ("oversized hello", [_p(["hello", V, "x" * msg.MAX_MESSAGE_BYTES])], "refuse",
     "oversized", "bytes > 16384"),
    ("unknown kind", [_p(["self_destruct", 1])], "error", "unknown_kind",
     "unknown kind 'self_destruct'"),
    ("a message of 3 frames", [b"a", b"b", b"c"], "error", "malformed", "3 ZeroMQ frames"),
    ("oversized message", [_p(["bye", "x" * msg.MAX_MESSAGE_BYTES])], "error", "oversized",
     "bytes > 16384"),
    ("sync from a stranger", [msg.encode("sync", 5)], "error", "unattached_peer",
     "sync from a peer other than the controller"),
    ("protocol 1 hello", [msg.encode("hello", 1, "old")], "refuse", "version_mismatch",
     "controller speaks 1, plant speaks 2"),
]


def _stranger_case(plant: Plant, case: tuple) -> float:
    what, frames, kind, code, words = case
    stranger = plant.dealer()
    try:
        stranger.send_multipart(frames)
        answer, waited = answer_to(stranger, kind)
    finally:
        stranger.close()
    assert (answer["code"], words in answer.fields["reason" if kind == "refuse" else "detail"]
            ) == (code, True), (what, answer)
    return waited


def _controller_cases(newest: int, seq: int) -> list[tuple[str, bytes, str, str]]:
    """(what, the attached controller sends, code, words) while the plant waits for the
    answer to state `newest`; `seq` is the controller's last control seq."""
    control = msg.pack_control
    return [
        ("a control for an older state (lockstep)", control(seq + 1, newest - 1, [0.0], 0, 0, 0),
         "not_newest", f"answers state {newest - 1}; the plant waits for the answer to "
                       f"state {newest}"),
        ("a replayed control", control(seq, newest, [0.0], 0, 0, 0), "stale_control",
         f"seq {seq} <= {seq}"),
        ("a control for a state never published", control(seq + 2, newest + 5, [0.0], 0, 0, 0),
         "bad_state_seq", f"state_seq {newest + 5}, newest state {newest}"),
        ("two inputs to a one-input plant", control(seq + 3, newest, [1.0, 2.0], 0, 0, 0),
         "bad_shape", "the plant has 1 inputs"),
        ("an implausible input", control(seq + 4, newest, [1e9], 0, 0, 0), "implausible_input",
         "beyond 10 x the input limits"),
        ("an unknown kind", _p(["self_destruct", 1]), "unknown_kind", "unknown kind"),
        ("a state sent to the plant", msg.pack_state(1, 0, [0.0] * 4, 0), "unexpected_kind",
         "state from the attached controller"),
        ("a gains_reply to no request", msg.encode("gains_reply", 77, True, "", [], [], []),
         "unexpected_kind", "gains_reply to no request"),
    ]


def test_every_malformed_input_is_answered_naming_its_rule_and_the_run_goes_on(
        plant: Plant) -> None:
    waits = [_stranger_case(plant, case) for case in FROM_A_STRANGER[:6]]  # before attach
    controller = plant.dealer()
    controller.send(msg.encode("hello", V, "test-controller"))
    answer_to(controller, "welcome")
    seq, states, kept = 0, 0, []
    while True:
        state = kept.pop(0) if kept else answer_to(controller, "state")[0]
        assert state.kind == "state", state
        if state["flags"] & msg.FLAG_FINAL:  # not to be answered; the plant's bye follows
            assert answer_to(controller, "bye")[0]["reason"] == "duration"
            break
        if state["seq"] == 10:  # mid-run: strangers, then the controller itself
            waits += [_stranger_case(plant, case) for case in FROM_A_STRANGER]
            for what, data, code, words in _controller_cases(state["seq"], seq):
                controller.send(data)
                error, waited = answer_to(controller, "error", kept)
                assert (error["code"], words in error["detail"]) == (code, True), (what, error)
                waits.append(waited)
        seq += 1
        controller.send(msg.pack_control(seq, state["seq"], [0.0], 0, time.monotonic_ns(), 0))
        states += 1
    plant.thread.join(5)
    server = plant.server
    assert plant.end == ["duration"] and states == STEPS
    assert server.intake.applied == STEPS and not server.guard.watchdog.latched
    # every rejection answered; the protocol-1 hello by the handshake's own refuse
    assert server.answers.report() == {"sent": len(waits) - 1, "suppressed": 0}
    assert sum(server.counters.rejected_by_kind.values()) == len(waits)
    assert max(waits) < 1.0, waits
    print(f"{len(waits)} answers, slowest {max(waits) * 1e3:.2f} ms")


def test_a_flood_is_answered_within_its_peers_budget_and_another_peer_still_hears(
        plant: Plant) -> None:
    controller, flooder, other = plant.dealer(), plant.dealer(), plant.dealer()
    controller.send(msg.encode("hello", V, "test-controller"))
    answer_to(controller, "welcome")
    first = answer_to(controller, "state")[0]
    start = time.monotonic()
    for i in range(200):
        flooder.send(_p(["self_destruct", i]))
    counts = plant.server.counters.rejected_by_kind
    give_up = time.monotonic() + 5
    while counts.get("unknown_kind", 0) < 200:
        assert time.monotonic() < give_up, counts
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    other.send(_p(["self_destruct", -1]))
    assert answer_to(other, "error")[0]["code"] == "unknown_kind"
    answers = 0
    while flooder.poll(100):
        assert msg.decode(flooder.recv())["code"] == "unknown_kind"
        answers += 1
    assert ANSWER_BURST <= answers <= ANSWER_BURST + elapsed * ANSWERS_PER_S + 1
    # The run goes on: the controller's answer steps the plant.
    controller.send(msg.pack_control(1, first["seq"], [0.0], 0, 0, 0))
    assert answer_to(controller, "state")[0]["seq"] == first["seq"] + 1
    for s in (controller, flooder, other):
        s.close()


def test_a_non_finite_control_is_answered_and_the_lockstep_run_ends_in_the_safe_state(
        plant: Plant) -> None:
    controller = plant.dealer()
    controller.send(msg.encode("hello", V, "test-controller"))
    answer_to(controller, "welcome")
    first = answer_to(controller, "state")[0]
    controller.send(msgpack.packb(["control", 1, first["seq"], [float("nan")], 0, 0, 0]))
    kept: list[msg.Message] = []
    error = answer_to(controller, "error", kept)[0]
    assert (error["code"], "control.u holds nan" in error["detail"]) == ("non_finite", True)
    bye = answer_to(controller, "bye", kept)[0]
    final = [m for m in kept if m.kind == "state"][-1]
    assert final["flags"] == msg.FLAG_SAFE | msg.FLAG_SAFETY | msg.FLAG_FINAL
    assert "non_finite_control" in bye["reason"]
    controller.close()


def _realtime_cases(seq: int) -> list[tuple[str, bytes, str, str]]:
    """The attached controller's mistakes in realtime, after its control `seq` was taken."""
    control = msg.pack_control
    return [
        ("a replayed control", control(seq, 0, [0.0], 0, 0, 0), "stale_control",
         f"seq {seq} <= {seq}"),
        ("a control for a state never published", control(seq + 1, 10**9, [0.0], 0, 0, 0),
         "bad_state_seq", f"state_seq {10**9}, newest state"),
        ("two inputs to a one-input plant", control(seq + 2, 0, [1.0, 2.0], 0, 0, 0),
         "bad_shape", "the plant has 1 inputs"),
        ("an unknown kind", _p(["self_destruct", 1]), "unknown_kind", "unknown kind"),
        ("a state sent to the plant", msg.pack_state(1, 0, [0.0] * 4, 0), "unexpected_kind",
         "state from the attached controller"),
    ]


@pytest.mark.parametrize("plant", ["realtime"], indirect=True)
def test_in_realtime_too_each_malformed_input_is_answered_and_the_run_goes_on(
        plant: Plant) -> None:
    controller = plant.dealer()
    controller.send(msg.encode("hello", V, "test-controller"))
    answer_to(controller, "welcome")
    first = answer_to(controller, "state")[0]
    controller.send(msg.pack_control(1, first["seq"], [0.0], 0, time.monotonic_ns(), 0))
    waits = [_stranger_case(plant, case) for case in FROM_A_STRANGER]
    kept: list[msg.Message] = []
    for what, data, code, words in _realtime_cases(1):
        controller.send(data)
        error, waited = answer_to(controller, "error", kept)
        assert (error["code"], words in error["detail"]) == (code, True), (what, error)
        waits.append(waited)
    newest = max(m["seq"] for m in kept if m.kind == "state")
    for seq in range(2, 52):  # the run goes on: controls answering fresh states are applied
        controller.send(msg.pack_control(seq, newest, [0.0], 0, time.monotonic_ns(), 0))
        newest = answer_to(controller, "state")[0]["seq"]
    controller.send(msg.encode("bye", "test done"))
    assert answer_to(controller, "bye")[0]["reason"] == "controller left"
    plant.thread.join(5)
    server = plant.server
    assert plant.end == ["controller left"] and server.intake.applied == 51
    assert not server.guard.watchdog.latched and server.guard.gates.report()["trips"] == 0
    assert server.answers.report() == {"sent": len(waits) - 1, "suppressed": 0}
    assert max(waits) < 1.0, waits


def test_a_malformed_gains_request_is_answered_as_its_asker_waits_with_a_gains_reply(
        plant: Plant) -> None:
    operator = plant.dealer()
    operator.send(_p(["gains_set", 7, "op", "K", [1.0]]))  # names: a str, not a list
    reply = answer_to(operator, "gains_reply")[0]
    assert (reply["request_id"], reply["ok"]) == (7, False)
    assert "gains_set.names has type str" in reply["detail"]
    operator.send(_p(["gains_get", "7", "op"]))  # no readable id: an error instead
    error = answer_to(operator, "error")[0]
    assert (error["code"], "gains_get.request_id has type str" in error["detail"]) == (
        "bad_type", True)
    operator.close()

"""A junk flood costs the plant a bounded amount of work per tick (real sockets, real plant).

In realtime, messages from peers other than the attached controller are decoded and
rejected up to `stranger_budget_per_tick` per tick; the rest are counted as `over_budget`
without being decoded. An operator's command is still handled past the budget, and the
attached controller's messages are never budgeted.
"""

from __future__ import annotations

import time

import msgpack
import numpy as np
import structlog
import zmq

from hil.dynamics import create_model
from hil.link import messages as msg
from hil.link.transport import PlantSocket
from plant_server.backends import SimBackend
from plant_server.server import PlantServer, PlantSettings

MS = 1_000_000
BUDGET = 16


def _dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    return sock


def _drain_until(server: PlantServer, done, timeout_s: float = 5.0) -> None:
    give_up = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < give_up, server.counters.rejected_by_kind
        server.sock.sock.poll(10)
        server.drain()


def test_a_flood_past_the_budget_is_counted_unread_and_operators_and_the_controller_pass(
        endpoint: str) -> None:
    model = create_model("dip", {}, substeps=4)
    backend = SimBackend(model, np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]), MS)
    settings = PlantSettings(mode="realtime", period_ns=MS, duration_s=1.0, start_delay_ns=0,
                             watchdog_timeout_ns=20 * MS, attach_timeout_ns=1000 * MS,
                             stranger_budget_per_tick=BUDGET)
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    server = PlantServer(backend, sock, settings, structlog.get_logger())
    ctx = zmq.Context()
    controller, stranger = _dealer(ctx, endpoint), _dealer(ctx, endpoint)
    try:
        controller.send(msg.encode("hello", msg.PROTOCOL_VERSION, "test-controller"))
        _drain_until(server, lambda: server.peer is not None)
        assert msg.decode(controller.recv()).kind == "welcome"
        server.inbox.stranger.open()  # what each realtime tick does
        junk = [msgpack.packb(["self_destruct", i]) for i in range(100)]
        for payload in junk:
            stranger.send(payload)
        stranger.send(msg.encode("operator_clear", "lab-operator"))
        counts = server.counters.rejected_by_kind
        answers: list[msg.Message] = []

        def acked() -> bool:
            while stranger.poll(0):
                answers.append(msg.decode(stranger.recv()))
            return bool(answers) and answers[-1].kind == "ack"

        _drain_until(server, lambda: counts.get("unknown_kind", 0)
                     + counts.get("over_budget", 0) == 100 and acked())
        assert counts == {"unknown_kind": BUDGET, "over_budget": 100 - BUDGET}
        # The operator's command came after the budget was spent, and was still handled;
        # the junk it decoded was answered (the over-budget rest is not read, not answered).
        assert (answers[-1].kind, answers[-1]["detail"]) == ("ack", "nothing to clear")
        assert [(m.kind, m["code"]) for m in answers[:-1]] == [("error", "unknown_kind")] * BUDGET
        assert server.answers.report() == {"sent": BUDGET, "suppressed": 0}
        # The attached controller is never budgeted: all 50 syncs are answered.
        for i in range(50):
            controller.send(msg.encode("sync", i))
        replies = []
        give_up = time.monotonic() + 5
        while len(replies) < 50 and time.monotonic() < give_up:
            server.sock.sock.poll(10)
            server.drain()
            while controller.poll(0):
                replies.append(msg.decode(controller.recv())["t_echo_ns"])
        assert replies == list(range(50))
        assert counts["over_budget"] == 100 - BUDGET
        # The next tick's budget decodes strangers again.
        server.inbox.stranger.open()
        for payload in junk[:5]:
            stranger.send(payload)
        _drain_until(server, lambda: counts["unknown_kind"] == BUDGET + 5)
        assert counts == {"unknown_kind": BUDGET + 5, "over_budget": 100 - BUDGET}
    finally:
        controller.close()
        stranger.close()
        ctx.term()
        sock.close()


def test_junk_dressed_as_operator_commands_is_bounded_and_a_real_command_still_passes(
        endpoint: str) -> None:
    model = create_model("dip", {}, substeps=4)
    backend = SimBackend(model, np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]), MS)
    settings = PlantSettings(mode="realtime", period_ns=MS, duration_s=1.0, start_delay_ns=0,
                             watchdog_timeout_ns=20 * MS, attach_timeout_ns=1000 * MS,
                             stranger_budget_per_tick=BUDGET)
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    server = PlantServer(backend, sock, settings, structlog.get_logger())
    ctx = zmq.Context()
    controller, flooder, operator = (_dealer(ctx, endpoint) for _ in range(3))
    try:
        controller.send(msg.encode("hello", msg.PROTOCOL_VERSION, "test-controller"))
        _drain_until(server, lambda: server.peer is not None)
        server.inbox.stranger.open()
        for i in range(100):  # each starts with the bytes of an e-stop, none is one
            flooder.send(msgpack.packb(["estop", "x", i]))
        operator.send(msg.encode("operator_clear", "lab-operator"))
        counts = server.counters.rejected_by_kind
        _drain_until(server, lambda: counts.get("bad_arity", 0)
                     + counts.get("over_budget", 0) == 100 and operator.poll(0))
        # The budget, plus one message of the flooder's past it: the rest unread.
        assert counts["bad_arity"] <= BUDGET + 1
        assert counts["over_budget"] >= 100 - BUDGET - 1
        ack = msg.decode(operator.recv())
        assert (ack.kind, ack["detail"]) == ("ack", "nothing to clear")
    finally:
        for s in (controller, flooder, operator):
            s.close()
        ctx.term()
        sock.close()

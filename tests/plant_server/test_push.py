"""`hil push` on a real plant node: a PlantServer on a loopback socket, a controller attached
on a DEALER, the operator's command (the CLI, or hil/link/operator.py) on its own socket in
a thread while the test drains the plant.

A push adds its value to the simulated plant's input over exactly its interval: the pushed
plant is, bit for bit, a plant given that value as its input from the push's start to its
end. Refusals (beyond the limits, an unknown input, latched, under way, before the run,
lockstep) change nothing and say why in the ack; plant.json counts and lists the pushes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import structlog
import zmq

from hil.cli import main as hil_main
from hil.dynamics import create_model
from hil.link import messages as msg
from hil.link import operator
from hil.link.transport import PlantSocket
from plant_server.backends import SimBackend
from plant_server.server import PlantServer, PlantSettings

MS = 1_000_000
INITIAL = np.array([0.0, 0.05, 0.0, 0.0])


@pytest.fixture(scope="module")
def model() -> Any:
    m = create_model("cartpole", {}, substeps=1)
    m.step(INITIAL.copy(), np.zeros(1), 1e-3, np.empty(4))
    return m


@dataclass
class Plant:
    server: PlantServer
    ctx: zmq.Context
    endpoint: str

    def drain_until(self, done: Callable[[], bool], timeout_s: float = 10.0) -> None:
        give_up = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < give_up, "the plant did not get there in time"
            self.server.inbox.stranger.open()  # what each realtime tick does
            self.server.sock.sock.poll(5)
            self.server.drain()

    def ask(self, call: Callable[[], Any]) -> Any:
        """`call()` (an operator's command) in a thread while the plant is drained."""
        out: list[Any] = []
        thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
        thread.start()
        self.drain_until(lambda: not thread.is_alive())
        return out[0]

    def attach(self) -> None:
        controller = self.ctx.socket(zmq.DEALER)
        controller.setsockopt(zmq.LINGER, 0)
        controller.connect(self.endpoint)
        controller.send(msg.encode("hello", msg.PROTOCOL_VERSION, "test-controller"))
        self.drain_until(lambda: self.server.peer is not None)
        self.server.backend.start(self.server.times.t0_ns)

    def push(self, name: str, value: float, duration_ms: float = 50.0) -> str:
        endpoint = self.endpoint
        return str(self.ask(lambda: operator.push(endpoint, name, value, duration_ms, 5.0)))


def _plant(model: Any, endpoint: str, mode: str) -> Iterator[Plant]:
    settings = PlantSettings(mode=mode, period_ns=MS, duration_s=60.0, start_delay_ns=0,
                             watchdog_timeout_ns=60_000 * MS, attach_timeout_ns=10_000 * MS)
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    server = PlantServer(SimBackend(model, INITIAL, MS), sock, settings, structlog.get_logger())
    ctx = zmq.Context()
    try:
        yield Plant(server, ctx, endpoint)
    finally:
        ctx.destroy(linger=0)
        sock.close()


@pytest.fixture
def plant(model: Any, endpoint: str) -> Iterator[Plant]:
    yield from _plant(model, endpoint, "realtime")


def test_a_push_adds_its_value_over_exactly_its_interval(
        plant: Plant, model: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plant.attach()
    args = ["push", "--endpoint", plant.endpoint, "force=7.5", "--for", "40ms"]
    assert plant.ask(lambda: hil_main(args)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("push: pushed force by 7.5 N for 40 ms from t = ")
    backend = plant.server.backend
    until = backend.push_until_ns  # type: ignore[attr-defined]
    start = until - 40 * MS
    t0 = plant.server.times.t0_ns
    assert t0 <= start
    reference = SimBackend(model, INITIAL, MS)
    reference.start(t0)
    arrivals = [(start, 7.5), (until, 0.0)]
    for tick in range(1, (until - t0) // MS + 20):
        target = t0 + tick * MS
        while arrivals and arrivals[0][0] <= target:
            at, u = arrivals.pop(0)
            reference.apply([u], at)
        assert np.array_equal(backend.advance(target), reference.advance(target)), tick
    assert not arrivals
    without = SimBackend(model, INITIAL, MS)
    without.start(t0)
    assert abs(without.advance(target)[2] - backend.state[2]) > 7.5 / 1.5 * 0.03  # it pushed
    report = plant.server.report()["pushes"]
    assert report["applied"] == 1 and report["refused"] == 0
    (event,) = report["events"]
    assert (event["input"], event["value"], event["duration_ms"]) == ("force", 7.5, 40.0)
    assert event["time_s"] == pytest.approx((start - t0) * 1e-9)


def test_pushes_the_plant_cannot_take_are_refused_saying_why(plant: Plant) -> None:
    assert plant.push("force", 5.0) == ("refused: the run has not started: no controller is "
                                        "driving the plant yet")
    plant.attach()
    limit = plant.server.backend.describe()["input_limits"][0]
    assert plant.push("force", 1e4) == (f"refused: force=10000 N is beyond the input's limits "
                                        f"[{limit[0]:g}, {limit[1]:g}] N")
    assert plant.push("torque", 1.0) == ("refused: 'torque' is not an input of plant "
                                         "'cartpole'; its inputs: force")
    nan = msg.encode("push", "force", float("nan"), 50.0, "x")
    ack = plant.ask(lambda: operator._ask(plant.endpoint, nan, 5.0, None))
    assert ack.startswith("refused: force=nan N is beyond the input's limits")
    assert plant.push("force", 5.0, 2000.0).startswith("pushed force by 5 N for 2000 ms")
    assert plant.push("force", 1.0).startswith("refused: another push is under way for ")
    plant.server.go_safe("safety: test", time.monotonic_ns())
    assert plant.push("force", 1.0) == ("refused: the plant is latched in its safe state "
                                        "(safety: test); clear it first (hil clear), or let "
                                        "the run end")
    assert plant.server.report()["pushes"]["refused"] == 6


def test_a_lockstep_plant_refuses_a_push(model: Any, endpoint: str) -> None:
    for plant in _plant(model, endpoint, "lockstep"):
        plant.attach()
        assert plant.push("force", 1.0).startswith(
            "refused: a lockstep run has no wall-clock time to push for")


@pytest.mark.parametrize(("words", "said"), [
    (["force", "--for", "50ms"], "'force': give INPUT=VALUE"),
    (["force=big", "--for", "50ms"], "force: 'big' is not a number"),
    (["force=inf", "--for", "50ms"], "a push is a finite number"),
    (["force=1", "--for", "50"], "give a duration with its unit"),
    (["force=1", "--for", "11s"], "at most 10 s"),
])
def test_a_push_the_cli_cannot_send_is_bad_usage_and_sends_nothing(
        words: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert hil_main(["push", "--endpoint", "tcp://127.0.0.1:9", *words]) == 2
    assert said in capsys.readouterr().err


def test_a_push_under_way_ends_where_the_plant_goes_safe(model: Any) -> None:
    pushed, reference = SimBackend(model, INITIAL, MS), SimBackend(model, INITIAL, MS)
    for b in (pushed, reference):
        b.start(0)
    pushed.push(0, 4.0, 3 * MS, 30 * MS)
    safe_at = 11 * MS + MS // 2
    arrivals = [(3 * MS, 4.0), (safe_at, 0.0)]  # the reference's input, applied as it comes
    for tick in range(1, 40):
        if tick == 12:
            pushed.apply_safe([0.0], safe_at)
        while arrivals and arrivals[0][0] <= tick * MS:
            reference.apply([arrivals[0][1]], arrivals.pop(0)[0])
        assert np.array_equal(pushed.advance(tick * MS), reference.advance(tick * MS)), tick

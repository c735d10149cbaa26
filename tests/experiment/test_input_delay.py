"""The actuators' input delay (`experiment.actuator.delay_steps`): the simulated plant
given delayed controls is, bit for bit, the plant given the same controls that many periods
later (zero before them), in lockstep's grid and at realtime's arbitrary arrival times; the
safe output skips the line."""

from __future__ import annotations

import numpy as np
import pytest
from plugin_cart import cart_model

from hil.config import ActuatorConfig
from hil.experiment.actuator import Actuator
from plant_server.backends.sim import SimBackend

PERIOD_NS = 2_000_000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> object:
    return cart_model(tmp_path_factory.mktemp("cart"))


def backend(model: object, delay_steps: int, lag_s: float = 0.0) -> SimBackend:
    actuator = Actuator(ActuatorConfig(delay_steps=delay_steps,
                                       lag_s={"force": lag_s} if lag_s else {}), ("force",))
    return SimBackend(model, np.array([0.0, 0.0]), PERIOD_NS, None,
                      actuator if actuator.active else None)


def lockstep(b: SimBackend, commands: list[float]) -> np.ndarray:
    """The states of a lockstep run: at step k the control answering state k is applied."""
    b.start(0)
    states = []
    for k, c in enumerate(commands):
        states.append(b.advance(k * PERIOD_NS).copy())
        b.apply([c], k * PERIOD_NS)
    return np.array(states)


@pytest.mark.parametrize("delay", [1, 3])
def test_a_delayed_control_acts_delay_steps_later_in_lockstep(model: object,
                                                              delay: int) -> None:
    commands = list(np.random.default_rng(4).uniform(-5, 5, 300))
    got = lockstep(backend(model, delay), commands)
    want = lockstep(backend(model, 0), [0.0] * delay + commands[:-delay])
    assert np.array_equal(got, want)
    assert not np.array_equal(got, lockstep(backend(model, 0), commands))


def test_the_delay_comes_before_the_lag_and_both_are_deterministic(model: object) -> None:
    commands = [2.0] * 150 + [-1.0] * 150
    first = lockstep(backend(model, 2, lag_s=0.02), commands)
    assert np.array_equal(first, lockstep(backend(model, 2, lag_s=0.02), commands))
    want = lockstep(backend(model, 0, lag_s=0.02), [0.0, 0.0, *commands[:-2]])
    assert np.array_equal(first, want)


def test_realtime_arrivals_are_shifted_by_whole_periods(model: object) -> None:
    rng = np.random.default_rng(9)
    arrivals = [int(a) for a in np.sort(rng.integers(0, 200 * PERIOD_NS, 120))]
    commands = [float(u) for u in rng.uniform(-3, 3, 120)]
    delayed, shifted = backend(model, 4), backend(model, 0)
    given = [(delayed, list(zip(arrivals, commands, strict=True))),
             (shifted, [(a + 4 * PERIOD_NS, u) for a, u in zip(arrivals, commands, strict=True)])]
    for b, _ in given:
        b.start(0)
    for tick in range(1, 210):
        target = tick * PERIOD_NS + PERIOD_NS // 3
        for b, pending in given:  # each control applied when it arrives, before the tick
            while pending and pending[0][0] <= target:
                arrival, u = pending.pop(0)
                b.apply([u], arrival)
        assert np.array_equal(delayed.advance(target), shifted.advance(target))
    assert abs(delayed.state[1]) > 1e-3  # it was pushed


def test_the_safe_output_skips_the_line_and_drops_what_was_in_it(model: object) -> None:
    delayed, direct = backend(model, 5), backend(model, 0)
    for b in (delayed, direct):
        b.start(0)
    for k in range(20):
        delayed.advance(k * PERIOD_NS)
        direct.advance(k * PERIOD_NS)
        delayed.apply([3.0], k * PERIOD_NS)
        direct.apply([3.0 if k >= 5 else 0.0], k * PERIOD_NS)
    delayed.apply_safe([0.0], 20 * PERIOD_NS - PERIOD_NS // 2)  # between two ticks
    direct.apply([0.0], 20 * PERIOD_NS - PERIOD_NS // 2)
    for k in range(20, 40):  # the 3.0s still in the line never act
        assert np.array_equal(delayed.advance(k * PERIOD_NS), direct.advance(k * PERIOD_NS))

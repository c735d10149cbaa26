"""The simulated plant's actuators: dead zone, lag and rate limit against a NumPy recursion
written from their definitions, and the plant integrating their output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from plugin_cart import cart_model

from hil.config import ActuatorConfig, ConfigError, validate_config
from hil.experiment.actuator import Actuator
from hil.experiment.plan import check_experiment
from plant_server.backends.sim import SimBackend

DT = 0.002


def expected(commands: np.ndarray, band: float, lag: float, rate: float) -> np.ndarray:
    out, a = [], 0.0
    for c in commands:
        v = 0.0 if abs(c) <= band else c - math.copysign(band, c)
        target = v if lag == 0 else a + (v - a) * (1 - math.exp(-DT / lag))
        if rate:
            target = min(max(target, a - rate * DT), a + rate * DT)
        a = target
        out.append(a)
    return np.array(out)


@pytest.mark.parametrize(("band", "lag", "rate"), [(0.5, 0.0, 0.0), (0.0, 0.05, 0.0),
                                                   (0.0, 0.0, 40.0), (0.3, 0.02, 60.0)])
def test_each_actuator_model_against_its_definition(band: float, lag: float,
                                                    rate: float) -> None:
    commands = np.concatenate([np.full(50, 0.4), np.full(100, 3.0), np.full(100, -2.0)])
    given = {key: {"force": value} for key, value in (
        ("deadband", band), ("lag_s", lag), ("rate_limit_per_s", rate)) if value}
    actuator = Actuator(ActuatorConfig.model_validate(given), ("force",))
    got = np.array([actuator.step(np.array([c]), DT)[0] for c in commands])
    np.testing.assert_allclose(got, expected(commands, band, lag, rate), rtol=0, atol=1e-12)
    if band >= 0.4:
        assert np.all(got[:50] == 0.0)  # a command inside the band gives nothing
    assert not np.array_equal(got, commands)  # each model changes the command


def test_the_plant_integrates_the_actuators_output_not_the_command(tmp_path: Path) -> None:
    model = cart_model(tmp_path)
    actuator = Actuator(ActuatorConfig(lag_s={"force": 0.05}, rate_limit_per_s={"force": 30.0}),
                        ("force",))
    backend = SimBackend(model, np.zeros(2), round(DT * 1e9), None, actuator)
    backend.start(0)
    backend.apply([2.0], 0)
    v, outputs = [0.0], []
    for k in range(1, 200):
        v.append(float(backend.advance(round(k * DT * 1e9))[1]))
        outputs.append(float(actuator.output[0]))
    want = expected(np.full(199, 2.0), 0.0, 0.05, 30.0)
    np.testing.assert_allclose(outputs, want, rtol=0, atol=1e-12)
    decay = math.exp(-0.5 * DT)  # v' = a - 0.5 v with a held over each step: exact
    exact = [0.0]
    for a in want:
        exact.append(exact[-1] * decay + a / 0.5 * (1 - decay))
    np.testing.assert_allclose(v, exact, rtol=0, atol=1e-9)
    assert outputs[0] < 2.0 * 0.1  # the command itself would have pushed at once


def test_an_actuator_on_an_input_the_plant_lacks_is_refused() -> None:
    config = validate_config({"experiment": {"actuator": {"lag_s": {"torque": 0.1}}}})
    with pytest.raises(ConfigError, match=r"experiment.actuator.lag_s.torque: 'torque' is not "
                                          r"an input of plant 'cart'; its inputs: force"):
        check_experiment(config.experiment, "cart", ("x", "x_dot"), ("force",))

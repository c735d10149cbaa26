"""The sensors: quantised to a resolution or an encoder's counts, noise of its std from a
seeded stream, and the measurement of `delay_samples` controls before."""

from __future__ import annotations

import math

import numpy as np

from hil.config import SensorsConfig
from hil.experiment.sensors import Sensors

NAMES = ("x", "theta", "x_dot")


def sensed(config: dict, states: list[list[float]]) -> np.ndarray:
    sensors = Sensors(SensorsConfig.model_validate(config), NAMES)
    out = []
    for s in states:
        v = np.array(s, dtype=np.float64)
        sensors.sense(v)
        out.append(v.copy())
    return np.array(out)


def test_quantised_to_the_resolution_and_to_the_encoders_counts() -> None:
    got = sensed({"resolution": {"x": 0.01}, "counts_per_rev": {"theta": 4096}},
                 [[0.123456, 0.01, 0.777]])[0]
    step = 2 * math.pi / 4096
    assert got[0] == 0.12 and got[2] == 0.777
    assert got[1] == round(0.01 / step) * step


def test_the_delay_gives_the_measurement_of_n_controls_before() -> None:
    states = [[float(k), 0.0, 0.0] for k in range(6)]
    got = sensed({"delay_samples": 2}, states)[:, 0]
    assert got.tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


def test_noise_has_its_std_only_where_asked_and_repeats_with_its_seed() -> None:
    states = [[1.0, 0.0, 2.0]] * 20_000
    a = sensed({"noise_std": {"x": 0.05}, "seed": 11}, states)
    b = sensed({"noise_std": {"x": 0.05}, "seed": 11}, states)
    c = sensed({"noise_std": {"x": 0.05}, "seed": 12}, states)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(np.std(a[:, 0]) - 0.05) < 0.05 * 0.03 and abs(np.mean(a[:, 0]) - 1.0) < 2e-3
    assert np.all(a[:, 1:] == [0.0, 2.0])
    assert not Sensors(SensorsConfig(), NAMES).active

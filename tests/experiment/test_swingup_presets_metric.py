"""Initial-state presets (`plant.initial_state: hanging`) and their refusals, and the
swing-up time metric (`experiment.swingup`) on synthetic trajectories, through to the
report's flat metrics and the gate that bounds them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.config import ConfigError, load_config
from hil.experiment.metrics import swingup_time
from hil.experiment.plan import check_experiment
from hil.reporting.experiment import flat_metrics, metric_gates


@pytest.mark.parametrize("plant", ["cartpole", "rotary"])
def test_hanging_and_upright_are_presets_of_the_pendulum_plants(plant: str) -> None:
    hanging = load_config(None, {"plant.model": plant, "plant.initial_state": "hanging"})
    assert hanging.plant.initial_state == [0.0, math.pi, 0.0, 0.0]
    upright = load_config(None, {"plant.model": plant, "plant.initial_state": "upright"})
    assert upright.plant.initial_state == [0.0, 0.0, 0.0, 0.0]


def test_the_swingup_configs_start_hanging() -> None:
    for name, angle in (("rotary", "pendulum"), ("cartpole", "theta")):
        config = load_config(f"configs/{name}-swingup.yaml")
        assert config.plant.initial_state[1] == math.pi
        assert config.experiment is not None and config.experiment.swingup is not None
        assert config.experiment.swingup.state == angle


def test_a_preset_the_plant_has_not_is_refused_naming_those_it_has() -> None:
    with pytest.raises(ConfigError, match=r"plant\.initial_state: .*'sideways' is not an "
                                          r"initial-state preset of plant 'cartpole'; its "
                                          r"presets: upright, hanging"):
        load_config(None, {"plant.model": "cartpole", "plant.initial_state": "sideways"})
    with pytest.raises(ConfigError, match="plant 'dip' has no initial-state presets; give a "
                                          "list of 6 numbers"):
        load_config(None, {"plant.initial_state": "hanging"})
    with pytest.raises(ConfigError, match="an FMU has no initial-state presets"):
        load_config(None, {"plant.model": "fmu", "plant.initial_state": "hanging"})


def test_the_swingup_state_must_be_a_state_of_the_plant() -> None:
    config = load_config(None, {"plant.model": "rotary",
                                "experiment": {"swingup": {"state": "theta"}}})
    with pytest.raises(ConfigError, match=r"experiment\.swingup\.state: 'theta' is not a "
                                          r"state of plant 'rotary'; its states: arm"):
        check_experiment(config.experiment, "rotary", ["arm", "pendulum", "arm_dot",
                                                       "pendulum_dot"], ["voltage"])


T = np.arange(0.0, 5.0, 0.001)


def angle_through(*spans: tuple[float, float]) -> np.ndarray:
    """An angle error of 1 rad, 0.02 inside each (start, end) span of times."""
    error = np.ones_like(T)
    for start, end in spans:
        error[(start <= T) & (end > T)] = 0.02
    return error


def test_the_time_is_the_first_entry_held_to_the_end() -> None:
    error = angle_through((1.0, 1.5), (2.0, 9.0))
    got = swingup_time(T, error, 0.1)
    assert got["time_s"] == pytest.approx(2.0)
    assert (got["caught"], got["entries"]) == (True, 2)
    assert swingup_time(T, -error, 0.1)["time_s"] == pytest.approx(2.0)  # either side


def test_with_a_hold_time_the_first_entry_held_that_long_counts() -> None:
    error = angle_through((1.0, 1.5), (2.0, 9.0))
    assert swingup_time(T, error, 0.1, hold_s=0.4)["time_s"] == pytest.approx(1.0)
    assert swingup_time(T, error, 0.1, hold_s=0.6)["time_s"] == pytest.approx(2.0)
    late = angle_through((4.5, 9.0))
    assert swingup_time(T, late, 0.1, hold_s=1.0) == {"time_s": None, "caught": False,
                                                      "entries": 1}


def test_a_run_that_ends_outside_the_window_is_not_caught_and_fails_its_gate() -> None:
    got = swingup_time(T, angle_through((1.0, 4.0)), 0.1)
    assert got == {"time_s": None, "caught": False, "entries": 1}
    section = {"states": {}, "inputs": {}, "swingup": {"state": "theta", **got}}
    flat = flat_metrics(section)
    assert flat["swingup.time_s"] is None and flat["swingup.caught"] == 0.0
    (gate,) = metric_gates({"metrics": flat}, {"swingup.time_s": 3.0})
    assert not gate["passed"] and "could not be measured" in gate["detail"]


def test_a_caught_swingup_is_bounded_by_its_gate() -> None:
    section = {"swingup": {"state": "theta", **swingup_time(T, angle_through((2.0, 9.0)),
                                                            0.1)}}
    flat = flat_metrics(section)
    assert flat["swingup.time_s"] == pytest.approx(2.0)
    assert (flat["swingup.caught"], flat["swingup.entries"]) == (1.0, 1.0)
    passed, failed = metric_gates({"metrics": flat}, {"swingup.time_s": 3.0}), metric_gates(
        {"metrics": flat}, {"swingup.time_s": 1.5})
    assert passed[0]["passed"] and not failed[0]["passed"]

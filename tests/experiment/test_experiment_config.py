"""A bad experiment section is refused naming the key and what is allowed."""

from __future__ import annotations

import pytest

from hil.config import ConfigError, validate_config
from hil.experiment.plan import check_experiment


def refused(section: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config({"experiment": section})
    return str(caught.value)


def test_a_signal_kind_it_does_not_know_names_the_key_and_the_kinds() -> None:
    text = refused({"reference": [{"state": "x", "signal": "stair", "value": 1.0}]})
    assert "experiment.reference.0" in text
    assert "'stair'" in text and "'step', 'ramp', 'sine', 'square'" in text
    text = refused({"disturbances": [{"input": "force", "signal": "ramp", "value": 1.0}]})
    assert "experiment.disturbances.0" in text and "'pulse', 'step', 'sine'" in text


def test_an_unknown_key_lists_the_keys_of_its_signal() -> None:
    text = refused({"reference": [{"state": "x", "signal": "step", "at": 1.0, "value": 1}]})
    assert "experiment.reference.0.step.at: unknown key; allowed here: at_s, initial, " \
           "signal, state, value" in text
    assert "allowed here: counts_per_rev, delay_samples, noise_std, resolution, seed" in \
        refused({"sensors": {"delay": 1}})


def test_a_missing_number_and_a_second_signal_on_one_state_are_refused() -> None:
    assert "experiment.reference.0.sine.frequency_hz: Field required" in refused(
        {"reference": [{"state": "x", "signal": "sine", "amplitude": 1.0}]})
    assert "state 'x' has two references" in refused({"reference": [
        {"state": "x", "signal": "step", "value": 1.0},
        {"state": "x", "signal": "sine", "amplitude": 1.0, "frequency_hz": 1.0}]})
    assert "state 'theta' has both a resolution and counts_per_rev" in refused(
        {"sensors": {"resolution": {"theta": 0.01}, "counts_per_rev": {"theta": 4096}}})
    assert "experiment.sensors.delay_samples" in refused({"sensors": {"delay_samples": -1}})


@pytest.mark.parametrize(("section", "key", "names"), [
    ({"reference": [{"state": "y", "signal": "step", "value": 1.0}]},
     "experiment.reference[0].state: 'y' is not a state", "x, theta, x_dot, theta_dot"),
    ({"disturbances": [{"input": "torque", "signal": "step", "value": 1.0}]},
     "experiment.disturbances[0].input: 'torque' is not an input", "force"),
    ({"sensors": {"noise_std": {"phi": 0.1}}},
     "experiment.sensors.noise_std.phi: 'phi' is not a state", "x, theta, x_dot, theta_dot"),
])
def test_a_name_the_plant_does_not_have_is_refused_with_the_names_it_has(
        section: dict, key: str, names: str) -> None:
    config = validate_config({"experiment": section})
    with pytest.raises(ConfigError) as caught:
        check_experiment(config.experiment, "cartpole", ("x", "theta", "x_dot", "theta_dot"),
                         ("force",))
    assert key in str(caught.value) and "of plant 'cartpole'" in str(caught.value)
    assert str(caught.value).endswith(names)


def test_the_step_exercise_config_loads_and_names_the_cartpoles_states() -> None:
    from pathlib import Path

    from hil.config import build_plant_model, load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "cartpole-step.yaml")
    model = build_plant_model(config)
    check_experiment(config.experiment, model.name, model.state_names, model.inputs.names)
    assert config.experiment is not None and config.run.mode == "lockstep"
    assert [r.state for r in config.experiment.reference] == ["x"]
    assert set(config.gates.metrics) == {"x.overshoot_pct", "x.settling_time_s",
                                         "x.steady_state_error"}

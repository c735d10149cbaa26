"""`hil new plant` in-process: the scaffolds load as written, take their inputs as declared,
and the built-in lqr holds them in a closed loop (the plant's own RK4 and the law's compute);
bad --inputs values are refused naming the fix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

from controller_client.controllers import create_controller
from hil.cli.new import new_command
from hil.config import build_plant_model, load_config


def scaffold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, kind: str = "plant",
             inputs: int = 1) -> tuple[int, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop(name, None)
    code = new_command(argparse.Namespace(kind=kind, name=name, inputs=inputs))
    return code, tmp_path / f"{name}.yaml"


def closed_loop(config_path: Path, seconds: float) -> tuple[object, np.ndarray]:
    """The scaffold's plant from its YAML, held by lqr for `seconds` (1 kHz, in-process)."""
    config = load_config(config_path)
    model = build_plant_model(config)
    law = create_controller("lqr", config.controller.gains, dt_s=1e-3, model=model,
                            plant=model.describe(), max_force_n=model.max_force_n)
    x, out = np.array(config.plant.initial_state, dtype=float), np.empty(len(model.state_names))
    for k in range(round(seconds * 1e3)):
        model.step(x, law.compute(x, k * 1e-3), 1e-3, out)
        x = out.copy()
    return model, x


def test_a_two_input_plant_scaffold_loads_and_lqr_holds_it(tmp_path, monkeypatch) -> None:
    code, config = scaffold(tmp_path, monkeypatch, "mybicopter", inputs=2)
    assert code == 0
    text = (tmp_path / "mybicopter.py").read_text()
    assert 'input_names = ("thrust_left", "thrust_right")' in text
    model = build_plant_model(load_config(config))
    desc = model.describe()
    assert desc["name"] == "mybicopter:Mybicopter"
    assert desc["input_names"] == ["thrust_left", "thrust_right"]
    assert desc["input_limits"] == [[0.0, 40.0], [0.0, 40.0]]
    assert desc["regulated"] == ["x", "z", "phi"]
    np.testing.assert_allclose(desc["equilibrium_input"], [19.62, 19.62], rtol=1e-9)
    d = model.derivatives(np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), np.array([10.0, 30.0]))
    np.testing.assert_allclose(d, [0, 0, 0, 0, 40.0 / 4.0 - 9.81, 0.25 * 20.0 / 0.05])
    model, x = closed_loop(config, 5.0)  # the config's duration
    np.testing.assert_allclose(x[:3], model.equilibrium[:3], atol=0.01)  # x, z = 1 m, phi
    assert np.abs(x[3:]).max() < 0.01


def test_the_one_input_cart_scaffold_is_still_balanced(tmp_path, monkeypatch) -> None:
    code, config = scaffold(tmp_path, monkeypatch, "mycart")
    assert code == 0
    model, x = closed_loop(config, 4.0)
    assert model.describe()["input_names"] == ["force"]
    assert abs(x[1]) < 0.01 and abs(x[0]) < 0.05  # upright, back near the middle


@pytest.mark.parametrize(("kind", "inputs", "needle"), [
    ("plant", 3, "no template with --inputs 3; give --inputs 1 (a cart-pole) or 2"),
    ("controller", 2, "leave --inputs out: a law returns one number per input"),
])
def test_an_input_count_without_a_template_is_refused_naming_the_fix(
        tmp_path, monkeypatch, capsys, kind, inputs, needle) -> None:
    code, config = scaffold(tmp_path, monkeypatch, "thing", kind=kind, inputs=inputs)
    assert code == 2
    assert needle in capsys.readouterr().err
    assert not config.exists()

"""Every way a lab's law or plant can fail to load says what was wrong and how to fix it
(ConfigError, exit 2); the built-in sliding-mode laws refuse plants they do not fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controller_client import controllers
from controller_client.main import law_from_config
from hil.config import ConfigError, build_plant_model, load_config
from hil.dynamics import create_model

ROOT = Path(__file__).resolve().parent.parent

LAW_OK = ("import numpy as np\n"
          "class Law:\n"
          "    gain_names = ('k',)\n"
          "    default_gains = (1.0,)\n"
          "    def __init__(self, gains, **context):\n"
          "        self.k = gains[0]\n"
          "    def compute(self, state, t):\n"
          "        return -self.k * float(state[0])\n")

PLANT_OK = ("import numpy as np\n"
            "class Plant:\n"
            "    state_names = ('x', 'v')\n"
            "    state_units = ('m', 'm/s')\n"
            "    input_limit = 5.0\n"
            "    def __init__(self, mass_kg=1.0):\n"
            "        self.m = mass_kg\n"
            "    def derivatives(self, state, u):\n"
            "        return np.array([state[1], u / self.m])\n")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's modules and registry entries are its own."""
    monkeypatch.setattr(controllers, "_snapshot", controllers._snapshot)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("lab_law", "lab_plant"):
        sys.modules.pop(name, None)


def config_in(folder: Path, text: str, **files: str):
    for name, source in files.items():
        (folder / f"{name}.py").write_text(source)
    path = folder / "lab.yaml"
    path.write_text(text)
    return load_config(path)


def law_error(folder: Path, law: str, name: str = "lab_law:Law") -> str:
    config = config_in(folder, f'controller: {{name: "{name}"}}\n', lab_law=law)
    with pytest.raises(ConfigError) as exc:
        law_from_config(config)
    return str(exc.value)


def plant_error(folder: Path, plant: str, initial: str = "[0.1, 0.0]",
                name: str = "lab_plant:Plant") -> str:
    config = config_in(folder, f'plant: {{model: "{name}", initial_state: {initial}}}\n',
                       lab_plant=plant)
    with pytest.raises(ConfigError) as exc:
        build_plant_model(config)
    return str(exc.value)


def test_a_law_and_a_plant_beside_the_config_load_and_work_together(tmp_path: Path) -> None:
    config = config_in(tmp_path, 'plant: {model: "lab_plant:Plant", initial_state: [0.1, 0]}\n'
                                 'controller: {name: "lab_law:Law", gains: [3.0]}\n',
                       lab_law=LAW_OK, lab_plant=PLANT_OK)
    assert config.source_dir == str(tmp_path)
    model = build_plant_model(config)
    law = law_from_config(config, model)
    assert law.compute(np.array([0.5, 0.0]), 0.0) == -1.5
    assert law.max_force_n == 5.0
    law.set_gains([4.0])  # no set_gains of its own: a new instance with the new gains
    assert law.compute(np.array([0.5, 0.0]), 0.0) == -2.0 and law.gains == (4.0,)
    out = np.empty(2)
    model.step(np.array([0.0, 0.0]), 100.0, 1.0, out)  # saturated at input_limit 5
    np.testing.assert_allclose(out, [2.5, 5.0], rtol=1e-12)  # x = u t^2 / 2m exactly (RK4)


def test_module_not_found_names_the_search_path(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK, "nolab:Law")
    assert "controller.name: module 'nolab' not found (from 'nolab:Law')" in message
    assert f"Searched, in order: {tmp_path}" in message
    assert "Put nolab.py beside the config file" in message


def test_no_such_class_lists_the_classes_there(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK, "lab_law:Missing")
    assert "module 'lab_law'" in message and "has no 'Missing'" in message
    assert "classes defined there: Law" in message


def test_a_law_without_compute_is_refused(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK.replace("def compute", "def calc"))
    assert "law class Law has no method compute(self, state, t)" in message


def test_a_compute_of_the_wrong_signature_is_refused(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK.replace("compute(self, state, t)", "compute(self, state)"))
    assert "Law.compute(self, state) does not fit compute(self, state, t)" in message


def test_an_init_that_does_not_take_the_context_is_refused(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK.replace("(self, gains, **context)", "(self, gains)"))
    assert "Law(gains, **context) failed" in message
    assert "must take the gains and **context" in message


def test_an_unknown_name_lists_the_built_in_laws(tmp_path: Path) -> None:
    message = law_error(tmp_path, LAW_OK, "pid")
    assert "controller.name: unknown controller 'pid'; known controllers: adaptive_smc" in message
    assert '"module.path:ClassName"' in message


def test_a_plant_without_derivatives_is_refused(tmp_path: Path) -> None:
    message = plant_error(tmp_path, PLANT_OK.replace("def derivatives", "def rhs"))
    assert "plant class Plant has no method derivatives(self, state, u)" in message


def test_a_derivatives_of_the_wrong_signature_is_refused(tmp_path: Path) -> None:
    message = plant_error(tmp_path, PLANT_OK.replace("derivatives(self, state, u)",
                                                     "derivatives(self, state)"))
    assert "Plant.derivatives(self, state) does not fit derivatives(self, state, u)" in message


def test_derivatives_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    message = plant_error(tmp_path, PLANT_OK.replace("[state[1], u / self.m]", "[state[1]]"))
    assert ("Plant.derivatives returned shape (1,) at plant.initial_state; it must return 2"
            in message)


def test_non_finite_derivatives_are_refused(tmp_path: Path) -> None:
    message = plant_error(tmp_path, PLANT_OK.replace("u / self.m", "float('nan')"))
    assert "returned non-finite values for d v/dt at plant.initial_state [0.1, 0.0]" in message


def test_a_plant_without_an_input_limit_is_refused(tmp_path: Path) -> None:
    message = plant_error(tmp_path, PLANT_OK.replace("    input_limit = 5.0\n", ""))
    assert "Plant needs input_limit (or max_force_n)" in message


def test_plant_params_that_do_not_fit_init_are_refused(tmp_path: Path) -> None:
    config = config_in(tmp_path, 'plant: {model: "lab_plant:Plant", initial_state: [0, 0], '
                                 'params: {mass: 2}}\n', lab_plant=PLANT_OK)
    with pytest.raises(ConfigError, match=r"plant.params: Plant\(\*\*plant.params\) failed: .*"
                                          r"unexpected keyword argument 'mass'"):
        build_plant_model(config)


def test_sliding_mode_laws_refuse_a_plant_they_do_not_fit(tmp_path: Path) -> None:
    config = config_in(tmp_path, 'plant: {model: rotary, initial_state: [0, 0.1, 0, 0]}\n'
                                 'controller: {name: sta_smc}\n')
    with pytest.raises(ConfigError, match=r"controller.name: sta_smc is designed for plant model "
                                          r"dip .* this plant is 'rotary' with states \['arm'"):
        law_from_config(config)


def test_the_controller_process_exits_2_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text('controller: {name: "nolab:Law"}\n')
    done = subprocess.run([sys.executable, "-m", "controller_client.main", "--config",
                           str(tmp_path / "lab.yaml"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert "hil-controller: controller.name: module 'nolab' not found" in done.stderr


def test_an_entry_point_plant_is_found_by_name(tmp_path: Path) -> None:
    dist = tmp_path / "labplants-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labplants\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hil.plants]\nslider = lab_plant:Plant\n")
    (tmp_path / "lab_plant.py").write_text(PLANT_OK)
    sys.path.insert(0, str(tmp_path))
    model = create_model("slider", {"mass_kg": 2.0})
    assert model.name == "lab_plant:Plant"
    np.testing.assert_allclose(model.derivatives([0.0, 1.0], 4.0), [1.0, 2.0])


def warm_up_refusal(folder: Path, returns: str, plant: str = "") -> str:
    """The one line `hil-controller` prints when a law of the lab's (its compute returning
    `returns`) is refused at warm-up, exit 2."""
    (folder / "lab_law.py").write_text(
        "class Law:\n"
        "    def __init__(self, gains, **context):\n"
        "        pass\n"
        "    def compute(self, state, t):\n"
        f"        return {returns}\n")
    config = folder / "lab.yaml"
    config.write_text('controller: {name: "lab_law:Law"}\n' + plant)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "controller_client.main", "--config",
                           str(config), "--out", str(folder / "run")], cwd=folder,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


def test_a_law_that_raises_on_the_initial_state_is_named_at_start_not_a_crash(
        tmp_path: Path) -> None:
    line = warm_up_refusal(tmp_path, "1.0 / float(state[0])",
                           "plant: {initial_state: [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]}\n")
    assert "controller.name: lab_law:Law raised ZeroDivisionError on plant.initial_state" in line
    assert "during its warm-up" in line


def test_a_law_returning_two_numbers_for_the_one_input_dip_is_refused_at_start(
        tmp_path: Path) -> None:
    line = warm_up_refusal(tmp_path, "[0.0, 1.0]")
    assert "controller.name: at plant.initial_state: control law lab_law:Law returned 2 " \
           "values (shape 2) for 1 input" in line

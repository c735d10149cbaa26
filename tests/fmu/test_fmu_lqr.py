"""The generic LQR linearises a model exchange FMU through its derivatives (the same design
as for the built-in cart-pole) and refuses a co-simulation FMU, saying why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fmubuild import fmus_fixture  # noqa: F401  (the session's FMUs)
from plantconfig import write_config

from controller_client.main import law_from_config
from hil.config import ConfigError, load_config


def test_lqr_designs_the_builtin_cartpoles_gains_for_the_fmu(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    law = law_from_config(load_config(write_config(tmp_path, fmus.me)))
    builtin = tmp_path / "builtin.yaml"
    builtin.write_text("controller: {name: lqr}\nplant: {model: cartpole, "
                       "initial_state: [0.0, 0.1, 0.0, 0.0]}\n")
    reference = law_from_config(load_config(builtin))
    np.testing.assert_allclose(law.a, reference.a, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(law.b, reference.b, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(law.k, reference.k, rtol=1e-5)
    assert np.all(np.linalg.eigvals(law.a - law.b @ law.k.reshape(1, -1)).real < 0)


def test_lqr_holds_the_two_input_fmu_with_a_gain_row_per_input(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    law = law_from_config(load_config(write_config(tmp_path, fmus.two_inputs)))
    assert law.gain_names[-2:] == ("r_F", "r_tau")
    assert law.k.shape == (2, 4)
    # The torque acts on the pole only: its column of B is (0, 0, -a/det, m00/det) != 0.
    assert law.b[3, 1] != 0 and law.b[2, 1] != 0
    assert np.all(np.linalg.eigvals(law.a - law.b @ law.k).real < 0)


def test_lqr_refuses_a_co_simulation_fmu_saying_why(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    config = write_config(tmp_path, fmus.cs, initial_state=[0.0, 0.0, 0.0, 0.0],
                          fmu_outputs=["x", "theta", "x_dot", "theta_dot"])
    with pytest.raises(ConfigError, match=r"fmu:cartpole is a co-simulation FMU: it has no "
                                          r"derivatives, so it cannot be trimmed or "
                                          r"linearised; export it for model exchange"):
        law_from_config(load_config(config))


def test_the_shipped_example_config_runs_the_example_fmu(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    built = subprocess.run([sys.executable, str(root / "tests" / "fmu" / "fmubuild.py"),
                            str(tmp_path)], capture_output=True, text=True, timeout=60,
                           check=True)
    assert built.stdout.strip() == str(tmp_path / "cartpole.fmu")
    config = load_config(root / "configs" / "fmu-cartpole.yaml",
                         {"plant.fmu": str(tmp_path / "cartpole.fmu")})
    law = law_from_config(config)
    assert law.k.shape == (4,) and law.describe()["equilibrium_input"] == [0.0]

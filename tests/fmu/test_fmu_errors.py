"""A bad FMU is refused at load with a message naming the problem and the fix: by the model
loader, and by `hil run` (both processes) with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from fmubuild import fmus_fixture  # noqa: F401  (the session's FMUs)
from plantconfig import fmu_model, write_config

from hil.config import ConfigError
from hil.dynamics.fmu.description import FmuError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

REFUSALS = {
    "not_a_zip": r"not_a_zip\.fmu is not an FMU: not a zip archive",
    "no_binary": r"no binary for this platform \(linux64: binaries/linux64/cartpole\.so\) and "
                 r"no sources to build one; it has binaries for no platform",
    "windows_only": r"no sources to build one; it has binaries for win64\. Export it for "
                    r"linux64",
    "no_input": r"cartpole has no input of type Real; a plant needs 1 to 8 real inputs",
    "input_without_limits": r"input 'F' has min=None, max='20\.0'; the runtime saturates each "
                            r"input at its limits: give it finite min < max",
    "wrong_guid": r"cartpole failed to instantiate .*its log: \[Error\] GUID "
                  r"\{not-this-binary\} does not match this binary's \{hil-cartpole-1\}",
    "events": r"has 2 event indicators; .* does not handle events",
    "wrong_token3": r"cartpole failed to instantiate \(fmi3Instantiate: .*its log: \[Error\] "
                    r"instantiationToken \{not-this-binary\} does not match",
    "events3": r"has 1 event indicators; .* does not handle events",
    "sources_that_do_not_build": r"has no binary for linux64, and building one from its "
                                 r"sources failed \(.*cmake --build .*\): .*error",
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_bad_fmu_is_refused_at_load_naming_the_problem(
        tmp_path: Path, fmus: SimpleNamespace, name: str) -> None:
    with pytest.raises(ConfigError, match=REFUSALS[name]):
        fmu_model(tmp_path, getattr(fmus, name))


def test_an_fmu_that_fails_to_initialise_is_refused_with_its_log(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match=r"failed to initialise: fmi2ExitInitializationMode"
                                          r".*its log: \[Error\] pole_com_m = 0\.6 must be in "
                                          r"\(0, pole_length_m = 0\.5\]"):
        fmu_model(tmp_path, fmus.me, params={"pole_com_m": 0.6})
    with pytest.raises(ConfigError, match=r"failed to initialise: fmi3ExitInitializationMode"
                                          r".*its log: \[Error\] pole_com_m = 0\.6"):
        fmu_model(tmp_path / "3", fmus.me3, params={"pole_com_m": 0.6})


def test_config_mistakes_name_the_key(tmp_path: Path, fmus: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match=r"plant\.fmu_outputs: \['x', 'speed'\] must name "
                                          r"distinct real outputs of cartpole; \['speed'\] are "
                                          r"not; its outputs are \['x', 'theta', 'x_dot', "
                                          r"'theta_dot', 'energy_J'\]"):
        fmu_model(tmp_path / "a", fmus.cs, fmu_outputs=["x", "speed"], initial_state=[0, 0])
    with pytest.raises(ConfigError, match=r"plant\.fmu_outputs chooses a co-simulation FMU's "
                                          r"state; this FMU is run as model exchange"):
        fmu_model(tmp_path / "b", fmus.me, fmu_outputs=["x"])
    with pytest.raises(ConfigError, match=r"plant\.initial_state: \[0\.0, 0\.1, 0\.0, 0\.0\] "
                                          r"is not where fmu:cartpole starts.*\[0\.0, 0\.0, "
                                          r"0\.0, 0\.0\]"):
        fmu_model(tmp_path / "c", fmus.cs, fmu_outputs=["x", "theta", "x_dot", "theta_dot"])
    with pytest.raises(FmuError, match=r"plant\.model fmu needs plant\.fmu"):
        from hil.dynamics import create_model

        create_model("fmu", {})


@pytest.mark.slow
def test_hil_run_exits_2_with_each_processs_message(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    config = write_config(tmp_path, fmus.not_a_zip)
    run = subprocess.run([sys.executable, "-m", "hil.cli", "run", "--config", str(config),
                          "--out", str(tmp_path / "run"), "--endpoint",
                          f"ipc://{tmp_path}/plant.ipc"],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    said = run.stdout + run.stderr
    for process in ("hil-plant", "hil-controller"):  # each exited 2 with the message
        assert f"{process}: plant.fmu: " in said, said
    assert said.count("not_a_zip.fmu is not an FMU: not a zip archive") == 2, said


def test_a_parameter_of_the_wrong_type_is_refused_naming_its_type(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match=r"plant\.params: pole_mass_kg is a parameter of type "
                                          r"Real of the FMU, got 'heavy'"):
        fmu_model(tmp_path, fmus.me, params={"pole_mass_kg": "heavy"})

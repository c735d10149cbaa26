"""A lab's own plant of several inputs (the contract of hil.dynamics.generic): it loads,
gets its inputs as an array, is integrated by RK4 (compiled or not) with each input saturated
at its own limits, has its trim found when it declares none, and anything that does not fit
is refused at load naming the problem and the fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from hil.dynamics import PluginError, check_model, create_model
from hil.dynamics.inputs import MAX_INPUTS, MAX_STATES

BICOPTER = '''
import math
import numpy as np
from numba import njit

M, L, I, G = 4.0, 0.25, 0.05, 9.81


@njit(cache=False)
def _kernel(state, u, out):
    thrust = u[0] + u[1]
    out[0], out[1], out[2] = state[3], state[4], state[5]
    out[3] = -thrust * math.sin(state[2]) / M
    out[4] = thrust * math.cos(state[2]) / M - G
    out[5] = L * (u[1] - u[0]) / I


class Bicopter:
    state_names = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
    state_units = ("m", "m", "rad", "m/s", "m/s", "rad/s")
    input_names = ("thrust_left", "thrust_right")
    input_units = ("N", "N")
    input_limits = ((0.0, 40.0), (0.0, 40.0))
    equilibrium = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    calls = 0

    def derivatives(self, state, u):
        type(self).calls += 1
        out = np.empty(6)
        _kernel(state, u, out)
        return out


class TrimmedBicopter(Bicopter):
    equilibrium_input = (19.62, 19.62)


class CompiledBicopter(Bicopter):
    derivatives_kernel = staticmethod(_kernel)


class HeavyBicopter(Bicopter):
    input_limits = ((0.0, 10.0), (0.0, 10.0))  # 20 N cannot lift 39.24 N


class FloatPlant:
    state_names = ("x", "v")
    state_units = ("m", "m/s")
    input_limit = 5.0

    def derivatives(self, state, u):
        return np.array([state[1], u[0] - u[1]])  # written for two inputs, declares one
'''


@pytest.fixture
def plants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("bicopter", None)
    (tmp_path / "bicopter.py").write_text(BICOPTER)
    return [str(tmp_path)]


def make(name: str, path: list[str], **params) -> object:
    return create_model(f"bicopter:{name}", params, search_path=path)


def test_a_two_input_plant_gets_an_array_and_describes_both_inputs(plants) -> None:
    model = make("Bicopter", plants)
    check_model(model, [0.0, 1.0, 0.1, 0.0, 0.0, 0.0])
    d = model.derivatives(np.array([0.0, 1.0, 0.0, 0, 0, 0]), np.array([10.0, 30.0]))
    np.testing.assert_allclose(d[3:], [0.0, 40.0 / 4.0 - 9.81, 0.25 * 20.0 / 0.05])
    desc = model.describe()
    assert desc["input_names"] == ["thrust_left", "thrust_right"]
    assert desc["input_units"] == ["N", "N"]
    assert desc["input_limits"] == [[0.0, 40.0], [0.0, 40.0]]
    assert desc["equilibrium"] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert desc["regulated"] == ["x", "z", "phi"]  # positions and angles, not rates
    assert desc["wraps"] == []
    # No trim declared: found by the runtime, each motor carrying half the weight.
    np.testing.assert_allclose(desc["equilibrium_input"], [19.62, 19.62], rtol=1e-9)


def test_a_declared_trim_is_used_and_none_found_is_none(plants) -> None:
    assert make("TrimmedBicopter", plants).describe()["equilibrium_input"] == [19.62, 19.62]
    heavy = make("HeavyBicopter", plants)
    assert heavy.equilibrium_input is None
    trim = heavy.trim()
    assert not trim.found and trim.residual == pytest.approx(9.81 - 20.0 / 4.0)
    assert "no input within the limits holds the equilibrium" in trim.reason(
        heavy.inputs.names)


def test_the_compiled_and_python_steps_agree_and_match_an_independent_integrator(
        plants) -> None:
    compiled, python = make("CompiledBicopter", plants), make("Bicopter", plants)
    check_model(compiled, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # the kernel agrees at load
    cls = sys.modules["bicopter"].Bicopter
    rng = np.random.default_rng(3)
    x_c = x_p = np.array([0.0, 1.0, 0.05, 0.0, 0.0, 0.0])
    ref = x_c.copy()
    out = np.empty(6)
    calls = cls.calls
    for _ in range(200):
        u = rng.uniform(-10.0, 50.0, 2)  # beyond 0..40 at times: each input saturated
        compiled.step(x_c, u, 1e-3, out)
        x_c = out.copy()
        python.step(x_p, u, 1e-3, out)
        x_p = out.copy()
        held = np.clip(u, 0.0, 40.0)
        ref = solve_ivp(lambda _t, s, h=held: python.derivatives(s, h), (0.0, 1e-3), ref,
                        rtol=1e-12, atol=1e-14, method="DOP853").y[:, -1]
    np.testing.assert_allclose(x_c, x_p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x_c, ref, rtol=1e-9, atol=1e-11)
    assert abs(x_c[2] - 0.05) > 0.01  # the inputs turned it: not a trivial comparison
    assert cls.calls > calls  # the python model called derivatives; the compiled one did not
    steps_calls = cls.calls - calls
    compiled.step(x_c, np.array([20.0, 20.0]), 1e-3, out)
    assert cls.calls - calls == steps_calls


def test_a_float_plant_that_indexes_its_input_is_told_to_declare_its_inputs(plants) -> None:
    model = make("FloatPlant", plants)
    with pytest.raises(PluginError, match=r"derivatives\(initial_state, u\) with u = 0.0 "
                       r"raised TypeError: 'float' object is not subscriptable; a plant of "
                       r"several inputs declares input_names, input_units and input_limits"):
        check_model(model, [0.0, 0.0])


def _plant(tmp_path: Path, body: str) -> list[str]:
    sys.modules.pop("badplant", None)
    (tmp_path / "badplant.py").write_text("import numpy as np\n\n\nclass P:\n"
                                          + textwrap.indent(textwrap.dedent(body), "    "))
    return [str(tmp_path)]


GOOD = '''
state_names = ("a", "b")
state_units = ("rad", "rad/s")
input_names = ("left", "right")
input_units = ("N", "N")
input_limits = (1.0, 1.0)
def derivatives(self, state, u):
    return np.array([state[1], u[0] - u[1]])
'''


@pytest.mark.parametrize(("change", "needle"), [
    ('input_limits = (1.0,)', "2 input_names ['left', 'right'] but 1 input_limits"),
    ('input_limits = None', "declares input_names but no input_limits"),
    ('input_units = ("N",)', "input_units has 1 entries for 2 inputs"),
    ('equilibrium = (0.0, 0.0, 0.0)', "equilibrium must be 2 finite numbers, one per state"),
    ('equilibrium_input = (0.0,)', "equilibrium_input must be 2 finite numbers, one per "
                                   "input"),
    ('equilibrium_input = (5.0, 0.0)', "equilibrium_input [5.0, 0.0] is outside the "
                                       "input_limits"),
    ('regulated_states = ("a", "c")', "regulated_states names ['c'], which are not states"),
    ('wrapping_states = "a"', "wrapping_states must be a tuple of state names"),
    (f'input_names = tuple(f"u{{i}}" for i in range({MAX_INPUTS + 1}))\n'
     f'input_units = ("N",) * {MAX_INPUTS + 1}\ninput_limits = (1.0,) * {MAX_INPUTS + 1}',
     f"a plant has 1 to {MAX_INPUTS} inputs, got {MAX_INPUTS + 1}"),
    (f'state_names = tuple(f"s{{i}}" for i in range({MAX_STATES + 1}))\n'
     f'state_units = ("m",) * {MAX_STATES + 1}', f"has {MAX_STATES + 1} states; a plant has "
                                                 f"1 to {MAX_STATES}"),
])
def test_what_does_not_fit_is_refused_at_load_naming_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, needle: str) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = _plant(tmp_path, GOOD + change + "\n")
    with pytest.raises(PluginError) as caught:
        create_model("badplant:P", {}, search_path=path)
    assert needle in str(caught.value)
    assert str(caught.value).startswith("plant.model: P")


def test_the_good_plant_loads_and_a_vector_derivatives_failure_names_the_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    model = create_model("badplant:P", {}, search_path=_plant(tmp_path, GOOD))
    check_model(model, [0.0, 0.0])
    assert model.describe()["regulated"] == ["a"]
    broken = create_model("badplant:P", {}, search_path=_plant(
        tmp_path, GOOD + "def derivatives(self, state, u):\n    return state + u[2]\n"))
    with pytest.raises(PluginError, match=r"with u = zeros\(2\), a float64 array, one entry "
                       r"per input \['left', 'right'\] raised IndexError"):
        check_model(broken, [0.0, 0.0])


def test_a_declared_trim_that_does_not_hold_and_a_failing_search_are_reasons_not_crashes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    wrong = create_model("badplant:P", {}, search_path=_plant(
        tmp_path, GOOD + "equilibrium_input = (0.5, 0.0)\n"))
    assert wrong.describe()["equilibrium_input"] is None
    assert wrong.trim().reason(("left", "right")).startswith(
        "the declared equilibrium_input {'left': 0.5, 'right': 0.0} leaves |d state/dt| = 0.5")
    failing = create_model("badplant:P", {}, search_path=_plant(
        tmp_path, GOOD + "equilibrium = (1.0, 0.0)\n"
                         "def derivatives(self, state, u):\n"
                         "    if state[0] == 1.0:\n"
                         "        raise ZeroDivisionError('at 1')\n"
                         "    return np.array([state[1], u[0] - u[1]])\n"))
    check_model(failing, [0.0, 0.0])  # fine where the run starts
    assert failing.describe()["equilibrium_input"] is None
    assert "no trim input could be sought: badplant:P.derivatives raised ZeroDivisionError " \
           "at the equilibrium [1.0, 0.0]: at 1" in failing.trim().reason(("left", "right"))

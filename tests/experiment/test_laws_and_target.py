"""Laws and the target: which laws take one (decided once, from the signature), lqr tracking
it against u = u_eq - K (x - target) in NumPy, and the same numbers as before at the
equilibrium."""

from __future__ import annotations

import numpy as np
import pytest

from controller_client.controllers import create_controller
from controller_client.controllers.external import ExternalLaw
from controller_client.law import needs_target, takes_target
from hil.dynamics import create_model
from hil.dynamics.plugins import PluginError

CONTEXT = {"dt_s": 0.002, "max_force_n": 20.0, "plant": {}, "model": None, "options": {}}


class TwoArgs:
    def __init__(self, gains, **context):
        pass

    def compute(self, state, t):
        return 0.0


class ThreeArgs(TwoArgs):
    def compute(self, state, t, target):  # type: ignore[override]
        return float(target[0] - state[0])


class Neither(TwoArgs):
    def compute(self, state):  # type: ignore[override]
        return 0.0


def test_a_plug_in_law_takes_a_target_when_its_compute_says_so() -> None:
    two = ExternalLaw(TwoArgs, "m:TwoArgs", None, CONTEXT)
    three = ExternalLaw(ThreeArgs, "m:ThreeArgs", None, CONTEXT)
    assert not takes_target(two) and takes_target(three)
    assert needs_target(three) and not needs_target(two)  # gets the equilibrium, at least
    assert three.compute(np.array([0.25]), 0.0, np.array([1.0])) == 0.75
    with pytest.raises(PluginError, match=r"compute\(self, state, t\) or "
                                          r"compute\(self, state, t, target\)"):
        ExternalLaw(Neither, "m:Neither", None, CONTEXT)


@pytest.mark.parametrize("plant", ["cartpole", "dip"])
def test_lqr_tracks_the_target_and_is_unchanged_at_the_equilibrium(plant: str) -> None:
    model = create_model(plant, {})
    law = create_controller("lqr", None, dt_s=0.002, max_force_n=model.max_force_n,
                            plant=model.describe(), model=model, options={})
    assert takes_target(law) and not needs_target(law)  # no reference: called as before
    n = len(model.state_names)
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.normal(0.0, 0.05, n)
        target = np.zeros(n)
        target[0] = rng.uniform(-0.5, 0.5)
        assert law.compute(x, 0.0, np.asarray(model.equilibrium, float)) == law.compute(x, 0.0)
        k = np.atleast_2d(law.k)
        u_eq = np.zeros(k.shape[0]) if plant == "dip" else law.u_eq
        want = np.clip(u_eq - k @ (x - target), -model.max_force_n, model.max_force_n)
        assert law.compute(x, 0.0, target) == pytest.approx(float(want[0]), rel=1e-12,
                                                             abs=1e-12)


@pytest.mark.parametrize("name", ["classical_smc", "sta_smc", "adaptive_smc",
                                  "hybrid_adaptive_sta_smc"])
def test_the_sliding_mode_laws_see_the_cart_relative_to_its_target(name: str) -> None:
    model = create_model("dip", {})

    def law():
        return create_controller(name, None, dt_s=0.001, max_force_n=150.0,
                                 plant=model.describe(), model=model, options={})

    x = np.array([0.1, 0.05, -0.02, 0.3, 0.1, 0.0])
    target = np.array([0.4, 0.2, -0.1, 0.05, 0.0, 0.0])  # angle targets are not followed
    shifted = x - np.array([0.4, 0.0, 0.0, 0.05, 0.0, 0.0])
    a, b, c, d = law(), law(), law(), law()
    for _ in range(5):  # the integrating laws keep their memory across steps alike
        assert a.compute(x, 0.0, target) == b.compute(shifted, 0.0)
        assert c.compute(x, 0.0, np.zeros(6)) == d.compute(x, 0.0)  # as before at 0
    assert a.compute(x, 0.0, target) != d.compute(x, 0.0)
    assert takes_target(a)

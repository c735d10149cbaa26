"""The sliding surfaces' zero dynamics, from the plant linearised at upright.

On the surface sigma = C x = 0 with C B != 0, the equivalent control leaves the dynamics
x' = (I - B C / (C B)) A x: one eigenvalue 0 (the sigma direction, removed by the projection)
and five that are the zero dynamics. They must all lie in the left half plane.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller_client.controllers import create_controller
from controller_client.controllers.riccati import linearise
from hil.dynamics.dip import DIPParams

A, B = linearise(DIPParams())
B = B.ravel()


def surface_row(k1: float, k2: float, l1: float, l2: float, kc: float, lc: float) -> np.ndarray:
    """C of sigma = k1 (th1d + l1 th1) - k2 (th2d + l2 th2) - kc (xd + lc x)."""
    return np.array([-kc * lc, k1 * l1, -k2 * l2, -kc, k1, -k2])


def zero_dynamics(c: np.ndarray) -> np.ndarray:
    """The five zero-dynamics eigenvalues (the projection's own 0 removed)."""
    eig = np.linalg.eigvals((np.eye(6) - np.outer(B, c) / (c @ B)) @ A)
    return np.delete(eig, np.argmin(np.abs(eig)))


def law_surface(name: str) -> np.ndarray:
    law = create_controller(name)
    g, o = dict(zip(law.gain_names, law.gains, strict=True)), law.options
    if name == "hybrid_adaptive_sta_smc":
        k1, k2, l1, l2 = g["c1"], g["c2"], g["lambda1"], g["lambda2"]
    else:
        k1, k2, l1, l2 = g["k1"], g["k2"], g["lambda1"], g["lambda2"]
    return surface_row(k1, k2, l1, l2, o["cart_gain"], o["cart_lambda"])


@pytest.mark.parametrize("name", ["classical_smc", "sta_smc", "adaptive_smc",
                                  "hybrid_adaptive_sta_smc"])
def test_default_surface_has_stable_zero_dynamics(name: str) -> None:
    eig = zero_dynamics(law_surface(name))
    assert eig.real.max() < -0.5, eig
    c = law_surface(name)
    assert abs(c @ B) > 1.0  # relative degree one: u acts on sigma_dot


def test_default_surface_eigenvalues_are_the_documented_ones() -> None:
    eig = np.sort_complex(zero_dynamics(law_surface("classical_smc")))
    expected = np.sort_complex(np.array([-8.223, -6.342, -1.970 - 1.097j, -1.970 + 1.097j,
                                         -0.877]))
    np.testing.assert_allclose(eig, expected, atol=2e-3)


def test_research_same_sign_surface_has_an_unstable_zero_mode() -> None:
    # The published [20, 15, 12, 8] on sigma = k1 (th1d + l1 th1) + k2 (th2d + l2 th2).
    c = np.array([0.0, 20 * 12, 15 * 8, 0.0, 20, 15])
    eig = zero_dynamics(c)
    assert eig.real.max() == pytest.approx(7.759, abs=1e-2)


def test_angle_only_surface_leaves_the_cart_drifting() -> None:
    # Without the cart term two zero-dynamics eigenvalues sit at 0: x and x_dot drift.
    eig = zero_dynamics(surface_row(2, 16, 42, 7.2, 0.0, 1.0))
    assert np.sum(np.abs(eig) < 1e-6) == 2
    assert np.sort(eig.real)[:3].max() < -1.0

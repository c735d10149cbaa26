"""The NumPy CARE solver against closed forms, and the LQR baseline's design at upright."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller_client.controllers.lqr import LQR
from controller_client.controllers.riccati import (
    RiccatiError,
    care_residual,
    linearise,
    lqr,
    solve_care,
)
from hil.dynamics.dip import DIPParams, derivatives


def test_double_integrator_matches_the_closed_form() -> None:
    # x'' = u, Q = I, R = 1: P = [[sqrt3, 1], [1, sqrt3]], K = [1, sqrt3].
    a = np.array([[0.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0], [1.0]])
    k, p = lqr(a, b, np.eye(2), np.eye(1))
    s3 = math.sqrt(3.0)
    np.testing.assert_allclose(p, [[s3, 1.0], [1.0, s3]], rtol=1e-12)
    np.testing.assert_allclose(k, [[1.0, s3]], rtol=1e-12)


def test_scalar_unstable_plant_matches_the_closed_form() -> None:
    # x' = a x + u, q, r: p = r (a + sqrt(a^2 + q / r)).
    a, q, r = 3.0, 2.0, 0.5
    p = solve_care(np.array([[a]]), np.array([[1.0]]), np.array([[q]]), np.array([[r]]))
    assert p[0, 0] == pytest.approx(r * (a + math.sqrt(a * a + q / r)), rel=1e-12)


def test_unstabilisable_pair_is_refused() -> None:
    a = np.diag([1.0, 2.0])
    b = np.array([[1.0], [0.0]])  # the mode at +2 is not reachable
    with pytest.raises(RiccatiError):
        solve_care(a, b, np.eye(2), np.eye(1))


def test_linearisation_matches_the_model_slope() -> None:
    a, b = linearise(DIPParams())
    x = np.array([0.0, 1e-4, -2e-4, 1e-4, 2e-4, -1e-4])
    np.testing.assert_allclose(a @ x + b.ravel() * 0.01, derivatives(x, 0.01), atol=1e-9)


def test_dip_lqr_solves_the_care_and_stabilises_the_linear_plant() -> None:
    law = LQR()
    a, b = linearise(law.params)
    q, r = np.diag(law.gains[:6]), np.array([[law.gains[6]]])
    assert care_residual(a, b, q, r, law.p_matrix) < 1e-10
    assert np.linalg.eigvalsh(law.p_matrix).min() > 0
    assert np.linalg.eigvals(a - b @ law.k.reshape(1, 6)).real.max() < -0.1


def test_lqr_sigma_is_the_square_root_of_the_riccati_form() -> None:
    law = LQR()
    x = np.array([0.1, 0.05, -0.02, 0.0, 0.1, -0.1])
    u = law.compute(x, 0.0)
    assert u == pytest.approx(-(law.k @ x))
    assert law.sigma == pytest.approx(math.sqrt(x @ law.p_matrix @ x), rel=1e-12)

"""Numerical linearisation of any plant model and the continuous algebraic Riccati equation.

`linearise_model` differentiates a model's `derivatives(state, u)` about an operating point
(its equilibrium and trim input) by central differences, so LQR works for any plant (built in
or a lab's own, one input or several: B is n x m). `unstabilisable_modes` is the
Popov-Belevitch-Hautus test: the eigenvalues of A in the closed right half plane that no
input reaches. The CARE
A'P + PA - P B R^-1 B' P + Q = 0 is solved by SciPy's `solve_continuous_are` (a Schur method
on the Hamiltonian pencil, more robust than a hand-written solver); the result is checked by
its residual and for a stabilising closed loop, and any failure is a `RiccatiError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from hil.dynamics.dip import STATE_SIZE, DIPParams, derivatives


class RiccatiError(ArithmeticError):
    """The CARE has no stabilising solution for these matrices (or it did not converge)."""


def linearise_model(model: Any, x0: Any = None, u0: Any = None, step: float = 1e-6
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of `model.derivatives(state, u)` at the state `x0` (default: the model's
    equilibrium) and the input `u0` (one number per input; default zeros), by central
    differences of `step` (scaled by each coordinate's size)."""
    x0 = np.asarray(model.equilibrium if x0 is None else x0, dtype=np.float64)
    u0 = np.zeros(model.inputs.n) if u0 is None else np.asarray(u0, dtype=np.float64)

    def f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.asarray(model.derivatives(x, u), dtype=np.float64)

    a = np.stack([_central(lambda h, e=e: f(x0 + h * e, u0), step * max(1.0, abs(float(x))))
                  for e, x in zip(np.eye(x0.shape[0]), x0, strict=True)], axis=1)
    b = np.stack([_central(lambda h, e=e: f(x0, u0 + h * e), step * max(1.0, abs(float(u))))
                  for e, u in zip(np.eye(u0.shape[0]), u0, strict=True)], axis=1)
    return a, b


def _central(f: Any, h: float) -> np.ndarray:
    return (f(h) - f(-h)) / (2 * h)


def unstabilisable_modes(a: np.ndarray, b: np.ndarray, margin: float = 1e-9) -> list[complex]:
    """The eigenvalues of `a` with real part >= -margin that `b` does not reach (PBH:
    rank [A - lambda I, B] < n); empty when (A, B) is stabilisable."""
    n = a.shape[0]
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1.0)
    modes = []
    for lam in np.linalg.eigvals(a):
        if lam.real < -margin:
            continue
        pencil = np.hstack([a - lam * np.eye(n), b])
        singular = np.linalg.svd(pencil, compute_uv=False)
        if singular[-1] <= 1e-9 * scale:
            modes.append(complex(lam))
    return modes


def linearise(params: DIPParams, step: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the double inverted pendulum at upright, by central differences."""
    x0 = np.zeros(STATE_SIZE)
    a = np.empty((STATE_SIZE, STATE_SIZE))
    for i in range(STATE_SIZE):
        e = np.zeros(STATE_SIZE)
        e[i] = step
        a[:, i] = (derivatives(x0 + e, 0.0, params) - derivatives(x0 - e, 0.0, params)) / (2 * step)
    b = (derivatives(x0, step, params) - derivatives(x0, -step, params)) / (2 * step)
    return a, b.reshape(STATE_SIZE, 1)


def care_residual(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray,
                  p: np.ndarray) -> float:
    """Largest entry of |A'P + PA - P B R^-1 B' P + Q|, relative to the largest of |Q|, |P|."""
    res = a.T @ p + p @ a - p @ b @ np.linalg.solve(r, b.T @ p) + q
    return float(np.abs(res).max() / max(np.abs(q).max(), np.abs(p).max(), 1e-300))


def solve_care(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The stabilising solution P of the CARE (symmetric, positive semi-definite)."""
    try:
        p = scipy.linalg.solve_continuous_are(a, b, q, r)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise RiccatiError(f"no stabilising solution: (A, B) not stabilisable or (A, Q) not "
                           f"detectable ({exc})") from None
    p = 0.5 * (p + p.T)
    k = np.linalg.solve(r, b.T @ p)
    if not np.all(np.isfinite(p)) or np.linalg.eigvals(a - b @ k).real.max() >= 0:
        raise RiccatiError("no stabilising solution: (A, B) is not stabilisable")
    residual = care_residual(a, b, q, r, p)
    if residual > 1e-8:
        raise RiccatiError(f"CARE did not converge (residual {residual:.2e})")
    return p


def lqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
    """(K, P): u = -K x minimises the integral of x'Qx + u'Ru; P solves the CARE."""
    p = solve_care(a, b, q, r)
    return np.linalg.solve(r, b.T @ p), p

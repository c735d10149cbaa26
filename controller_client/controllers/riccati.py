"""Linearisation of the nominal plant at upright and the continuous algebraic Riccati equation.

No SciPy: the CARE  A'P + PA - P B R^-1 B' P + Q = 0  of a 6-state plant is small enough to
solve with NumPy alone, once at start-up. The stable invariant subspace of the Hamiltonian
matrix gives P (eigenvector method); Newton-Kleinman iterations, each a Lyapunov equation
solved through its Kronecker form, then polish it to the working precision, and the residual
is checked. This keeps a 30+ MB dependency out of the controller for one 6 x 6 solve.
"""

from __future__ import annotations

import numpy as np

from hil.dynamics.dip import STATE_SIZE, DIPParams, derivatives


class RiccatiError(ArithmeticError):
    """The CARE has no stabilising solution for these matrices (or it did not converge)."""


def linearise(params: DIPParams, step: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of d state/dt at the upright equilibrium, by central differences."""
    x0 = np.zeros(STATE_SIZE)
    a = np.empty((STATE_SIZE, STATE_SIZE))
    for i in range(STATE_SIZE):
        e = np.zeros(STATE_SIZE)
        e[i] = step
        a[:, i] = (derivatives(x0 + e, 0.0, params) - derivatives(x0 - e, 0.0, params)) / (2 * step)
    b = (derivatives(x0, step, params) - derivatives(x0, -step, params)) / (2 * step)
    return a, b.reshape(STATE_SIZE, 1)


def _lyapunov(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """X with a' X + X a + q = 0 (Kronecker form; fine for small a)."""
    n = a.shape[0]
    eye = np.eye(n)
    lhs = np.kron(eye, a.T) + np.kron(a.T, eye)
    x = np.linalg.solve(lhs, -q.reshape(-1, order="F")).reshape(n, n, order="F")
    return 0.5 * (x + x.T)


def care_residual(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray,
                  p: np.ndarray) -> float:
    """Largest entry of |A'P + PA - P B R^-1 B' P + Q|, relative to the largest of |Q|, |P|."""
    res = a.T @ p + p @ a - p @ b @ np.linalg.solve(r, b.T @ p) + q
    return float(np.abs(res).max() / max(np.abs(q).max(), np.abs(p).max(), 1e-300))


def solve_care(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray,
               tol: float = 1e-11, max_iter: int = 50) -> np.ndarray:
    """The stabilising solution P of the CARE (symmetric, positive semi-definite)."""
    n = a.shape[0]
    g = b @ np.linalg.solve(r, b.T)
    ham = np.block([[a, -g], [-q, -a.T]])
    w, v = np.linalg.eig(ham)
    stable = w.real < 0
    if stable.sum() != n:
        raise RiccatiError("the Hamiltonian has eigenvalues on the imaginary axis: "
                           "(A, B) not stabilisable or (A, Q) not detectable")
    u1, u2 = v[:n, stable], v[n:, stable]
    if np.linalg.cond(u1) > 1e12:
        raise RiccatiError("no stabilising solution: (A, B) is not stabilisable")
    p = np.real(u2 @ np.linalg.inv(u1))
    p = 0.5 * (p + p.T)
    for _ in range(max_iter):  # Newton-Kleinman from the (stabilising) eigenvector solution
        k = np.linalg.solve(r, b.T @ p)
        closed = a - b @ k
        if np.linalg.eigvals(closed).real.max() >= 0:
            raise RiccatiError("Riccati iteration lost stability")
        p_next = _lyapunov(closed, q + k.T @ r @ k)
        done = np.abs(p_next - p).max() <= tol * max(np.abs(p_next).max(), 1.0)
        p = p_next
        if done:
            break
    if care_residual(a, b, q, r, p) > 1e-8:
        raise RiccatiError(f"CARE did not converge (residual {care_residual(a, b, q, r, p):.2e})")
    return p


def lqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
    """(K, P): u = -K x minimises the integral of x'Qx + u'Ru; P solves the CARE."""
    p = solve_care(a, b, q, r)
    return np.linalg.solve(r, b.T @ p), p

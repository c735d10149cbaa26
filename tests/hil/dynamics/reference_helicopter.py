"""Plain NumPy reference for the 2-DOF helicopter, derived independently of the kernel.

Nothing here is copied from the kernel's closed form. The body is described in 3-D: it turns
about the vertical z axis by yaw psi and about its horizontal pitch axis by theta; its mass m
is a point at l_cm along the body direction b = (cos th cos psi, cos th sin psi, sin th); the
rest of it is the inertias J_p about the pitch axis and J_y about the vertical. Generically:

    M(q)  = diag(J_p, J_y) + m Jv' Jv          (Jv = d com / dq from the kinematics)
    C q'  = Christoffel symbols of the first kind of dM/dq (complex step)
    G(q)  = dV/dq, V = m g z_com (complex step)
    Q     = [K_pp V_p + K_py V_y - B_p th', K_yp V_p + K_yy V_y - B_y psi']
    q''   = solve(M, Q - C q' - G)
"""

from __future__ import annotations

import numpy as np

from hil.dynamics.helicopter import HelicopterParams

H = 1e-20  # complex step: d f / d q_k = Im f(q + i H e_k) / H, exact to rounding


def com(q: np.ndarray, p: HelicopterParams) -> np.ndarray:
    th, psi = q[0], q[1]
    return p.com_offset_m * np.array([np.cos(th) * np.cos(psi), np.cos(th) * np.sin(psi),
                                      np.sin(th)])


def com_jacobian(q: np.ndarray, p: HelicopterParams) -> np.ndarray:
    th, psi = q[0], q[1]
    d_th = np.array([-np.sin(th) * np.cos(psi), -np.sin(th) * np.sin(psi), np.cos(th)])
    d_psi = np.array([-np.cos(th) * np.sin(psi), np.cos(th) * np.cos(psi), 0.0 * th])
    return p.com_offset_m * np.stack([d_th, d_psi], axis=1)


def mass_matrix(q: np.ndarray, p: HelicopterParams) -> np.ndarray:
    jv = com_jacobian(q, p)
    return np.diag([p.pitch_inertia_kgm2, p.yaw_inertia_kgm2]) + p.mass_kg * jv.T @ jv


def potential(q: np.ndarray, p: HelicopterParams) -> complex:
    return p.mass_kg * p.gravity_mps2 * com(q, p)[2]


def _d_dq(f, q: np.ndarray, k: int):
    e = np.zeros(2, dtype=complex)
    e[k] = 1j * H
    return np.imag(f(q + e)) / H


def derivatives(state: np.ndarray, u: np.ndarray, p: HelicopterParams) -> np.ndarray:
    q, v = np.asarray(state[:2], dtype=float), np.asarray(state[2:], dtype=float)
    m = mass_matrix(q, p).real
    dm = [_d_dq(lambda x: mass_matrix(x, p), q, k) for k in range(2)]
    coriolis = np.array([sum((dm[k][i, j] - 0.5 * dm[i][j, k]) * v[j] * v[k]
                             for j in range(2) for k in range(2)) for i in range(2)])
    gravity = np.array([_d_dq(lambda x: potential(x, p), q, k) for k in range(2)])
    vp, vy = u
    generalised = np.array([
        p.pitch_thrust_nm_per_v * vp + p.yaw_on_pitch_nm_per_v * vy
        - p.pitch_damping_nms_per_rad * v[0],
        p.pitch_on_yaw_nm_per_v * vp + p.yaw_thrust_nm_per_v * vy
        - p.yaw_damping_nms_per_rad * v[1]])
    acc = np.linalg.solve(m, generalised - coriolis - gravity)
    return np.concatenate([v, acc])


def energy(state: np.ndarray, p: HelicopterParams) -> float:
    q, v = np.asarray(state[:2], dtype=float), np.asarray(state[2:], dtype=float)
    return float(0.5 * v @ mass_matrix(q, p) @ v + potential(q, p))

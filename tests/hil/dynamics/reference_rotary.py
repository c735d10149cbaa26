"""Plain NumPy reference for the rotary (Furuta) pendulum, derived independently of the kernel.

Nothing here is copied from the kernel's closed form. The mechanism is described in 3-D: the
arm turns about the vertical z axis by theta; the pendulum is a slender rod hanging from the
arm's tip, its axis a = sin(alpha) t + cos(alpha) z (t the arm's tangential direction), its
centre of mass at Lr e_r + (Lp / 2) a. From the centre-of-mass position (differentiated
numerically for its Jacobian), the rod's inertia tensor Jp (I - a a') about its centre of mass
and the angular velocities (arm: theta' z; rod: theta' z - alpha' e_r, as a tilt toward +t is
a negative turn about e_r), generically:

    M(q)  = Jr e0 e0' + mp Jv' Jv + Jw' I(q) Jw     (Jv by complex-step differentiation)
    C q'  = Christoffel symbols of the first kind of dM/dq (central differences)
    G(q)  = dV/dq, V = mp g z_com (complex step)
    Q     = [kt (V - km theta') / Rm - Dr theta', -Dp alpha']
    q''   = solve(M, Q - C q' - G)
"""

from __future__ import annotations

import numpy as np

from hil.dynamics.rotary import RotaryParams

H = 1e-20  # complex step: d f / d q_k = Im f(q + i H e_k) / H, exact to rounding


def _frames(theta: complex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e_r = np.array([np.cos(theta), np.sin(theta), 0.0])
    t = np.array([-np.sin(theta), np.cos(theta), 0.0])
    return e_r, t, np.array([0.0, 0.0, 1.0])


def _jacobian(q: np.ndarray, p: RotaryParams) -> np.ndarray:
    jv = np.empty((3, 2))
    for k in range(2):
        e = np.zeros(2, dtype=complex)
        e[k] = 1j * H
        jv[:, k] = com(q + e, p).imag / H
    return jv


def com(q: np.ndarray, p: RotaryParams) -> np.ndarray:
    e_r, t, z = _frames(q[0])
    axis = np.sin(q[1]) * t + np.cos(q[1]) * z
    return p.arm_length_m * e_r + 0.5 * p.pendulum_length_m * axis


def mass_matrix(q: np.ndarray, p: RotaryParams) -> np.ndarray:
    jv = _jacobian(q, p)
    e_r, t, z = _frames(q[0])
    axis = np.sin(q[1]) * t + np.cos(q[1]) * z
    inertia = p.pendulum_inertia_kgm2 * (np.eye(3) - np.outer(axis, axis))
    jw = np.column_stack([z, -e_r])
    m = p.pendulum_mass_kg * jv.T @ jv + jw.T @ inertia @ jw
    m[0, 0] += p.arm_inertia_kgm2
    return m


def derivatives(state: np.ndarray, volts: float, p: RotaryParams) -> np.ndarray:
    q, qd = np.asarray(state[:2], float), np.asarray(state[2:], float)
    h = 1e-5
    dm = []
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        dm.append((mass_matrix(q + e, p) - mass_matrix(q - e, p)) / (2 * h))
    c = np.zeros(2)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                gamma = 0.5 * (dm[k][i, j] + dm[j][i, k] - dm[i][j, k])
                c[i] += gamma * qd[j] * qd[k]
    g = p.pendulum_mass_kg * p.gravity_mps2 * _jacobian(q, p)[2]
    torque = p.torque_constant_nm_per_a * (volts - p.back_emf_v_s_per_rad * qd[0]) \
        / p.motor_resistance_ohm
    forces = np.array([torque - p.arm_damping_nms_per_rad * qd[0],
                       -p.pendulum_damping_nms_per_rad * qd[1]])
    qdd = np.linalg.solve(mass_matrix(q, p), forces - c - g)
    return np.concatenate([qd, qdd])

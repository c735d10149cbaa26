"""2-DOF helicopter (pitch and yaw, two motor voltages), as the Quanser 2 DOF Helicopter: numba.

Parameters
----------
From Quanser's "2 DOF Helicopter" laboratory guide and its parameter script (``setup_heli_2d``,
the values every course built on it quotes): the helicopter's moving mass m_heli = 1.3872 kg,
its centre of mass l_cm = 0.186 m from the pitch axis along the body, the moments of inertia
about the pitch and yaw axes J_eq,p = 0.0384 kg m^2 and J_eq,y = 0.0432 kg m^2, the viscous
damping about them B_p = 0.800 and B_y = 0.318 N m s/rad, and the thrust-torque gains of the
two propellers: K_pp = 0.204 N m/V (pitch propeller on pitch), K_yy = 0.072 N m/V (yaw
propeller on yaw), and the cross-couplings K_py = 0.0068 N m/V (yaw propeller on pitch) and
K_yp = 0.0219 N m/V (pitch propeller's reaction torque on yaw). The pitch motor's amplifier
takes +-24 V, the yaw motor's +-15 V.

Equations
---------
Pitch theta is the body's elevation (0: level, + nose up), yaw psi its heading about the
vertical. The centre of mass is l_cm along the body, so gravity pulls the nose down with
m g l_cm cos(theta) and the yaw inertia shrinks as the body tilts. Lagrange's equations with
T = 1/2 (J_p + m l^2) theta'^2 + 1/2 (J_y + m l^2 cos^2 theta) psi'^2, V = m g l sin theta,
and the propellers' torques as generalised forces give (Quanser's nonlinear model):

    (J_p + m l^2) theta'' = K_pp V_p + K_py V_y - m g l cos(th) - B_p th'
                            - m l^2 sin(th) cos(th) psi'^2
    (J_y + m l^2 cos^2 th) psi'' = K_yp V_p + K_yy V_y - B_y psi'
                                   + 2 m l^2 sin(th) cos(th) th' psi'

Level flight needs the pitch propeller to lift the mass offset, and its reaction torque turns
the body unless the yaw propeller cancels it: the trim solves
[[K_pp, K_py], [K_yp, K_yy]] [V_p, V_y] = [m g l, 0] (about 12.4 V and -3.8 V).
The tests check the kernel against an independent NumPy derivation, the energy balance with
the damping off, and the linearisation against the hand-derived Jacobian.

State
-----

=====  ==========  =====  ===================================================
index  name        unit   meaning
=====  ==========  =====  ===================================================
0      pitch       rad    elevation of the body, 0 level, + nose up
1      yaw         rad    heading about the vertical (turns freely: wraps)
2      pitch_rate  rad/s
3      yaw_rate    rad/s
=====  ==========  =====  ===================================================

Inputs: the pitch and yaw motor voltages, V, each saturated at its limit by
:func:`rk4_step_kernel` (and so :meth:`HelicopterModel.step`), not by the derivatives.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from numba import njit

from hil.dynamics.base import ModelKernels, ModelParams, PlantModel

STATE_NAMES = ("pitch", "yaw", "pitch_rate", "yaw_rate")
STATE_UNITS = ("rad", "rad", "rad/s", "rad/s")
INPUT_NAMES = ("pitch_voltage", "yaw_voltage")
INPUT_UNITS = ("V", "V")
STATE_SIZE = 4
INPUT_SIZE = 2

_P_JP = 0  # J_p + m l^2
_P_JY = 1  # J_y
_P_ML2 = 2  # m l^2
_P_MGL = 3  # m g l
_P_BP = 4
_P_BY = 5
_P_KPP = 6
_P_KPY = 7
_P_KYP = 8
_P_KYY = 9
_P_MAX_VP = 10
_P_MAX_VY = 11
PACKED_SIZE = 12


@dataclasses.dataclass(frozen=True)
class HelicopterParams(ModelParams):
    """Quanser 2 DOF Helicopter parameters (SI units, in the field names); module docstring."""

    mass_kg: float = 1.3872
    com_offset_m: float = 0.186  # centre of mass from the pitch axis, along the body
    pitch_inertia_kgm2: float = 0.0384  # J_eq,p
    yaw_inertia_kgm2: float = 0.0432  # J_eq,y
    pitch_damping_nms_per_rad: float = 0.800
    yaw_damping_nms_per_rad: float = 0.318
    pitch_thrust_nm_per_v: float = 0.204  # K_pp
    yaw_on_pitch_nm_per_v: float = 0.0068  # K_py
    pitch_on_yaw_nm_per_v: float = 0.0219  # K_yp
    yaw_thrust_nm_per_v: float = 0.072  # K_yy
    gravity_mps2: float = 9.81
    max_pitch_voltage_v: float = 24.0
    max_yaw_voltage_v: float = 15.0

    def _validate(self) -> None:
        self._require_positive(
            "mass_kg", "pitch_inertia_kgm2", "yaw_inertia_kgm2", "pitch_thrust_nm_per_v",
            "yaw_thrust_nm_per_v", "max_pitch_voltage_v", "max_yaw_voltage_v")
        self._require_nonnegative(
            "com_offset_m", "pitch_damping_nms_per_rad", "yaw_damping_nms_per_rad",
            "yaw_on_pitch_nm_per_v", "pitch_on_yaw_nm_per_v", "gravity_mps2")

    def _pack(self) -> tuple[float, ...]:
        ml2 = self.mass_kg * self.com_offset_m ** 2
        return (
            self.pitch_inertia_kgm2 + ml2,
            self.yaw_inertia_kgm2,
            ml2,
            self.mass_kg * self.gravity_mps2 * self.com_offset_m,
            self.pitch_damping_nms_per_rad,
            self.yaw_damping_nms_per_rad,
            self.pitch_thrust_nm_per_v,
            self.yaw_on_pitch_nm_per_v,
            self.pitch_on_yaw_nm_per_v,
            self.yaw_thrust_nm_per_v,
            self.max_pitch_voltage_v,
            self.max_yaw_voltage_v,
        )

    @property
    def max_force_n(self) -> float:
        """The first input's limit under the name every model shares (here volts)."""
        return self.max_pitch_voltage_v

    def trim_voltages(self) -> tuple[float, float]:
        """(V_p, V_y) that hold the body level at rest (module docstring)."""
        kpp, kpy = self.pitch_thrust_nm_per_v, self.yaw_on_pitch_nm_per_v
        kyp, kyy = self.pitch_on_yaw_nm_per_v, self.yaw_thrust_nm_per_v
        torque = self.mass_kg * self.gravity_mps2 * self.com_offset_m
        det = kpp * kyy - kpy * kyp
        return torque * kyy / det, -torque * kyp / det


# --- compiled kernels -------------------------------------------------------------------------


@njit(cache=True)
def _check_args(p: np.ndarray, state: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
    if p.shape[0] != PACKED_SIZE:
        raise ValueError("p must be HelicopterParams().as_array() (12 packed constants)")
    if state.shape[0] != STATE_SIZE or out.shape[0] != STATE_SIZE:
        raise ValueError("state and out must have 4 elements")
    if u.shape[0] != INPUT_SIZE:
        raise ValueError("u must have 2 elements (pitch and yaw motor voltages)")


@njit(cache=True)
def _accelerations(th: float, th_dot: float, psi_dot: float, vp: float, vy: float,
                   p: np.ndarray) -> tuple[float, float]:
    """(theta'', psi'') at pitch `th`, the rates, and the voltages."""
    s, c = math.sin(th), math.cos(th)
    ml2sc = p[_P_ML2] * s * c
    pitch_torque = (p[_P_KPP] * vp + p[_P_KPY] * vy - p[_P_MGL] * c - p[_P_BP] * th_dot
                    - ml2sc * psi_dot * psi_dot)
    yaw_torque = p[_P_KYP] * vp + p[_P_KYY] * vy - p[_P_BY] * psi_dot \
        + 2.0 * ml2sc * th_dot * psi_dot
    return pitch_torque / p[_P_JP], yaw_torque / (p[_P_JY] + p[_P_ML2] * c * c)


@njit(cache=True)
def derivatives_kernel(state: np.ndarray, u: np.ndarray, p: np.ndarray, out: np.ndarray
                       ) -> None:
    """Write d state / dt at ``state`` under the voltages ``u`` (not saturated) into ``out``."""
    _check_args(p, state, u, out)
    th_dot, psi_dot = state[2], state[3]
    out[2], out[3] = _accelerations(state[0], th_dot, psi_dot, u[0], u[1], p)
    out[0], out[1] = th_dot, psi_dot


@njit(cache=True)
def rk4_step_kernel(state: np.ndarray, u: np.ndarray, dt_s: float, substeps: int,
                    p: np.ndarray, out: np.ndarray) -> None:
    """Advance ``state`` by ``dt_s``: ``substeps`` classic RK4 steps, the voltages held
    constant and each saturated at its limit. ``out`` may be ``state``. No heap allocation."""
    _check_args(p, state, u, out)
    if not dt_s > 0.0 or substeps < 1:
        raise ValueError("dt_s must be > 0 and substeps >= 1")
    vp = min(max(u[0], -p[_P_MAX_VP]), p[_P_MAX_VP])
    vy = min(max(u[1], -p[_P_MAX_VY]), p[_P_MAX_VY])
    h = dt_s / substeps
    th, psi, v, w = state[0], state[1], state[2], state[3]
    for _ in range(substeps):
        a1, b1 = _accelerations(th, v, w, vp, vy, p)
        v2, w2 = v + 0.5 * h * a1, w + 0.5 * h * b1
        a2, b2 = _accelerations(th + 0.5 * h * v, v2, w2, vp, vy, p)
        v3, w3 = v + 0.5 * h * a2, w + 0.5 * h * b2
        a3, b3 = _accelerations(th + 0.5 * h * v2, v3, w3, vp, vy, p)
        v4, w4 = v + h * a3, w + h * b3
        a4, b4 = _accelerations(th + h * v3, v4, w4, vp, vy, p)
        th += h / 6.0 * (v + 2.0 * (v2 + v3) + v4)
        psi += h / 6.0 * (w + 2.0 * (w2 + w3) + w4)
        v += h / 6.0 * (a1 + 2.0 * (a2 + a3) + a4)
        w += h / 6.0 * (b1 + 2.0 * (b2 + b3) + b4)
    out[0], out[1], out[2], out[3] = th, psi, v, w


@njit(cache=True)
def energy_kernel(state: np.ndarray, p: np.ndarray) -> float:
    """Kinetic + potential energy, J; potential zero with the body level."""
    c = math.cos(state[0])
    v, w = state[2], state[3]
    kinetic = 0.5 * (p[_P_JP] * v * v + (p[_P_JY] + p[_P_ML2] * c * c) * w * w)
    return float(kinetic + p[_P_MGL] * math.sin(state[0]))


class HelicopterModel(PlantModel):
    """The 2 DOF helicopter as a simulated plant (see the module docstring)."""

    name = "helicopter"
    state_names = STATE_NAMES
    state_units = STATE_UNITS
    input_names = INPUT_NAMES
    input_units = INPUT_UNITS
    input_name, input_unit = INPUT_NAMES[0], INPUT_UNITS[0]  # for single-input readers
    upright_angles = ("pitch",)  # the safety gates' angle limit: pitch only, yaw turns freely
    regulated_states = ("pitch", "yaw")
    wrapping_states = ("yaw",)
    params_type = HelicopterParams
    kernels = ModelKernels(
        step=rk4_step_kernel, derivatives=derivatives_kernel, energy=energy_kernel)

    params: HelicopterParams

    def _input_limits(self) -> tuple[Any, ...]:
        return (self.params.max_pitch_voltage_v, self.params.max_yaw_voltage_v)

    @property
    def equilibrium_input(self) -> np.ndarray:
        """The voltages that hold the body level at rest (`HelicopterParams.trim_voltages`)."""
        return np.array(self.params.trim_voltages())


# Any array-like state; the default parameters unless given (see PlantModel.derivatives_at).
derivatives = HelicopterModel.derivatives_at
total_energy = HelicopterModel.energy_at

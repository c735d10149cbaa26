"""Rotary inverted (Furuta) pendulum, as the Quanser QUBE-Servo 2: full nonlinear dynamics, numba.

Parameters
----------
From Quanser's QUBE-Servo 2 documentation: the "QUBE-Servo 2 User Manual" (Quanser, 2016,
table of system parameters) and the parameter script of its Rotary Pendulum workbook
(``qube2_rotpen_param.m``): motor terminal resistance Rm = 8.4 Ohm, current-torque constant
kt = 0.042 N m/A, back-EMF constant km = 0.042 V s/rad; rotary arm mass 0.095 kg, length
0.085 m, inertia about the motor axis Jr = mr Lr^2 / 12 = 5.72e-5 kg m^2 (the workbook's
value), equivalent viscous damping Dr = 0.0015 N m s/rad; pendulum mass 0.024 kg, length
0.129 m, centre of mass at Lp / 2, inertia about its centre of mass Jp = mp Lp^2 / 12, damping
Dp = 0.0005 N m s/rad; g = 9.81. The amplifier input is limited to +-10 V, the limit the
Quanser labs command.

Equations
---------
The arm turns about the vertical axis (angle theta); the pendulum hangs from the arm's tip and
swings in the plane normal to the arm (angle alpha from upright, + toward the direction of +
theta). With l = Lp / 2 and J0 = Jp + mp l^2 (the pendulum about its pivot), Lagrange's
equations (as in Cazzolato and Prime, "On the dynamics of the Furuta pendulum", J. Control
Sci. Eng. 2011, for a slender pendulum) give M(q) q'' = rhs with

    M   = [[Jr + mp Lr^2 + J0 sin^2 a,   mp Lr l cos a],
           [mp Lr l cos a,               J0           ]]

    rhs = [tau - Dr th' - 2 J0 sin a cos a th' a' + mp Lr l sin a a'^2,
           -Dp a' + J0 sin a cos a th'^2 + mp g l sin a                 ]

and the motor torque tau = kt (V - km th') / Rm (armature inductance neglected). The tests
check this against an independent NumPy derivation from the bodies' 3-D kinematics
(``tests/hil/dynamics/reference_rotary.py``) and energy conservation without damping.

State
-----

=====  ============  =====  ==================================================
index  name          unit   meaning
=====  ============  =====  ==================================================
0      arm           rad    rotary arm angle (theta), + counter-clockwise from above
1      pendulum      rad    pendulum from upright (alpha), + toward +theta motion
2      arm_dot       rad/s  arm rate
3      pendulum_dot  rad/s  pendulum rate
=====  ============  =====  ==================================================

Input: motor voltage, V, saturated at +-``max_voltage_v`` by :func:`rk4_step_kernel`.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

from numba import njit

from hil.dynamics.base import ModelKernels, ModelParams, PlantModel
from hil.dynamics.rk4 import rk4_two_dof

STATE_NAMES = ("arm", "pendulum", "arm_dot", "pendulum_dot")
STATE_UNITS = ("rad", "rad", "rad/s", "rad/s")
STATE_SIZE = 4

_P_ARM_J = 0  # Jr + mp Lr^2
_P_J0 = 1  # Jp + mp l^2
_P_COUPLE = 2  # mp Lr l
_P_GRAV = 3  # mp g l
_P_DR = 4
_P_DP = 5
_P_TORQUE_PER_V = 6  # kt / Rm
_P_EMF_DAMPING = 7  # kt km / Rm
_P_MAX_V = 8
PACKED_SIZE = 9


@dataclasses.dataclass(frozen=True)
class RotaryParams(ModelParams):
    """QUBE-Servo 2 parameters (SI units, in the field names); see the module docstring."""

    motor_resistance_ohm: float = 8.4
    torque_constant_nm_per_a: float = 0.042
    back_emf_v_s_per_rad: float = 0.042
    arm_mass_kg: float = 0.095
    arm_length_m: float = 0.085
    arm_inertia_kgm2: float = 0.095 * 0.085**2 / 12.0  # about the motor axis
    arm_damping_nms_per_rad: float = 0.0015
    pendulum_mass_kg: float = 0.024
    pendulum_length_m: float = 0.129
    pendulum_inertia_kgm2: float = 0.024 * 0.129**2 / 12.0  # about its centre of mass
    pendulum_damping_nms_per_rad: float = 0.0005
    gravity_mps2: float = 9.81
    max_voltage_v: float = 10.0

    def _validate(self) -> None:
        self._require_positive(
            "motor_resistance_ohm", "arm_mass_kg", "arm_length_m", "arm_inertia_kgm2",
            "pendulum_mass_kg", "pendulum_length_m", "pendulum_inertia_kgm2", "max_voltage_v")
        self._require_nonnegative(
            "torque_constant_nm_per_a", "back_emf_v_s_per_rad", "arm_damping_nms_per_rad",
            "pendulum_damping_nms_per_rad", "gravity_mps2")

    def _pack(self) -> tuple[float, ...]:
        mp, lr, l_com = self.pendulum_mass_kg, self.arm_length_m, 0.5 * self.pendulum_length_m
        kt_r = self.torque_constant_nm_per_a / self.motor_resistance_ohm
        return (
            self.arm_inertia_kgm2 + mp * lr * lr,
            self.pendulum_inertia_kgm2 + mp * l_com * l_com,
            mp * lr * l_com,
            mp * self.gravity_mps2 * l_com,
            self.arm_damping_nms_per_rad,
            self.pendulum_damping_nms_per_rad,
            kt_r,
            kt_r * self.back_emf_v_s_per_rad,
            self.max_voltage_v,
        )

    @property
    def max_force_n(self) -> float:
        """The input limit under the name every model shares (here volts)."""
        return self.max_voltage_v


# --- compiled kernels -------------------------------------------------------------------------


@njit(cache=True)
def _check_args(p, state, out):
    if p.shape[0] != PACKED_SIZE:
        raise ValueError("p must be RotaryParams().as_array() (9 packed constants)")
    if state.shape[0] != STATE_SIZE or out.shape[0] != STATE_SIZE:
        raise ValueError("state and out must have 4 elements")


@njit(cache=True)
def _accelerations(th, a, th_dot, a_dot, volts, p):
    """(theta'', alpha'') (th unused): the 2x2 system M q'' = rhs by Cramer's rule."""
    s, c = math.sin(a), math.cos(a)
    j0 = p[_P_J0]
    m00 = p[_P_ARM_J] + j0 * s * s
    m01 = p[_P_COUPLE] * c
    tau = p[_P_TORQUE_PER_V] * volts - p[_P_EMF_DAMPING] * th_dot
    r0 = (tau - p[_P_DR] * th_dot - 2.0 * j0 * s * c * th_dot * a_dot
          + p[_P_COUPLE] * s * a_dot * a_dot)
    r1 = -p[_P_DP] * a_dot + j0 * s * c * th_dot * th_dot + p[_P_GRAV] * s
    inv_det = 1.0 / (m00 * j0 - m01 * m01)
    return ((j0 * r0 - m01 * r1) * inv_det, (m00 * r1 - m01 * r0) * inv_det)


_rk4 = rk4_two_dof(_accelerations, "rotary")


@njit(cache=True)
def derivatives_kernel(state, volts, p, out):
    """Write d state / dt at ``state`` under ``volts`` (not saturated) into ``out``."""
    _check_args(p, state, out)
    th_dot, a_dot = state[2], state[3]
    out[2], out[3] = _accelerations(state[0], state[1], th_dot, a_dot, volts, p)
    out[0], out[1] = th_dot, a_dot


@njit(cache=True)
def rk4_step_kernel(state, volts, dt_s, substeps, p, out):
    """Advance ``state`` by ``dt_s``: ``substeps`` classic RK4 steps, voltage held constant
    and saturated at +-max_voltage_v. ``out`` may be ``state``. No heap allocation."""
    _check_args(p, state, out)
    if not dt_s > 0.0 or substeps < 1:
        raise ValueError("dt_s must be > 0 and substeps >= 1")
    limit = p[_P_MAX_V]
    u = min(max(volts, -limit), limit)
    _rk4(state, u, dt_s, substeps, p, out)


@njit(cache=True)
def energy_kernel(state, p):
    """Kinetic + potential energy, J; potential zero at the pendulum pivot's height."""
    _check_args(p, state, state)
    s, c = math.sin(state[1]), math.cos(state[1])
    v, w = state[2], state[3]
    m00 = p[_P_ARM_J] + p[_P_J0] * s * s
    kinetic = 0.5 * (m00 * v * v + p[_P_J0] * w * w) + p[_P_COUPLE] * c * v * w
    return kinetic + p[_P_GRAV] * c


class RotaryModel(PlantModel):
    """The QUBE-Servo 2 rotary pendulum as a simulated plant (see the module docstring)."""

    name = "rotary"
    state_names = STATE_NAMES
    state_units = STATE_UNITS
    input_name = "voltage"
    input_unit = "V"
    upright_angles = ("pendulum",)  # the arm's angle is free
    params_type = RotaryParams
    kernels = ModelKernels(
        step=rk4_step_kernel, derivatives=derivatives_kernel, energy=energy_kernel)
    # `plant.initial_state: hanging` (a swing-up's start) or `upright`, at rest.
    initial_states = MappingProxyType({
        "upright": (0.0, 0.0, 0.0, 0.0), "hanging": (0.0, math.pi, 0.0, 0.0)})

    params: RotaryParams


# Any array-like state; the default parameters unless given (see PlantModel.derivatives_at).
derivatives = RotaryModel.derivatives_at
total_energy = RotaryModel.energy_at

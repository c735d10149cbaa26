"""Swing-up by energy control, then a balancing law: the cart-pole and the rotary pendulum.

K. J. Astrom and K. Furuta, "Swinging up a pendulum by energy control", Automatica 36(2),
2000. A pendulum of mass m, centre of mass l from its pivot and inertia J0 about the pivot,
its angle theta from upright, has the energy (zero upright at rest, -2 m g l hanging at rest)

    E = J0 theta_dot^2 / 2 + m g l (cos theta - 1)

and with its pivot accelerated by a along the base's motion (the cart; the rotary arm's tip,
a = Lr arm_ddot) it obeys J0 theta_ddot = m g l sin theta - m l a cos theta (friction and, on
the rotary pendulum, the arm's centrifugal term aside), so dE/dt = -m l a theta_dot cos theta.
The law asks for the pivot acceleration (in units of g)

    a / g = sat_n( k_energy (E / (m g l) - energy_target) sign(theta_dot cos theta) )
            - k_base p / l - k_base_dot p_dot / (l w0)

The first term makes dE/dt = -m l a theta_dot cos theta >= 0 while E is below the target
(0, the upright's) and <= 0 above it; `sat_n` holds it within `max_accel_g` (n in the paper).
The base terms, on the pivot's displacement p (m: the cart's x, the arm's Lr arm) and speed,
in pendulum lengths l and natural periods (w0 = sqrt(m g l / J0)) so that one set of gains
fits both plants, keep the cart on its track and the arm near zero (they may slow the pumping
while they act). From rest exactly hanging sign(0) counts as +1, so the law kicks the
pendulum off.

The pivot acceleration becomes the input through the plant model itself (collocated partial
feedback linearisation): the base's acceleration is affine in the input, b0 + b1 u, read from
the model's derivative kernel at u = 0 and u = 1, so u = (a / scale - b0) / b1, held within
the input's limits. Inside the catch window (|theta| <= `catch_angle_rad` from upright, the
short way round, and |theta_dot| <= `catch_rate_rad_s`) the law hands over to the balancing
law (`balance`: `lqr` by default, the built-in one designed about the upright), and back to
swinging when the angle leaves `release_angle_rad` (a wider window, so that the balancer's
first moves after a catch do not switch it back).

Gains: `k_energy` (g per m g l of energy), `k_base` (g per l), `k_base_dot` (g per l w0).
Options (in `controller.options`): `catch_angle_rad` (0.3), `catch_rate_rad_s` (6),
`release_angle_rad` (0.6), `max_accel_g` (1), `energy_target` (0, in m g l), `balance` (a
law's name, "lqr"), `balance_gains` (its gains, its defaults when absent) and
`balance_options` (its options). `sigma` and `mass_condition` are
the balancer's while it balances and NaN while swinging (the Lyapunov monitor judges the
balancing only); `energy` is the last computed E (J) and `balancing` the current mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller_client.law import takes_target
from hil.dynamics.plugins import PluginError

GAIN_NAMES = ("k_energy", "k_base", "k_base_dot")
DEFAULT_GAINS = (5.0, 0.2, 0.8)
OPTIONS: dict[str, Any] = {"catch_angle_rad": 0.3, "catch_rate_rad_s": 6.0,
                           "release_angle_rad": 0.6, "max_accel_g": 1.0, "energy_target": 0.0,
                           "balance": "lqr",
                           "balance_gains": None, "balance_options": None}
SWING, BALANCE = 0, 1


@dataclass(frozen=True)
class Pendulum:
    """What the law needs of a plant: where the base and the pendulum are in its state, the
    pendulum's inertia about its pivot (kg m^2), m g l (J), l (m) and the pivot's
    displacement per unit of the base's coordinate (1 for a cart, Lr for a rotary arm)."""

    base: int
    angle: int
    base_dot: int
    angle_dot: int
    inertia_kgm2: float
    mgl_j: float
    com_m: float
    pivot_per_base_m: float
    gravity_mps2: float

    @property
    def omega0(self) -> float:
        """The small-swing angular frequency sqrt(m g l / J0), rad/s."""
        return math.sqrt(self.mgl_j / self.inertia_kgm2)

    def energy(self, theta: float, theta_dot: float) -> float:
        """E of the module docstring (J): zero upright at rest."""
        return 0.5 * self.inertia_kgm2 * theta_dot * theta_dot + self.mgl_j * (
            math.cos(theta) - 1.0)


class OptionError(PluginError):
    """A bad `controller.options` entry of swingup; the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"controller.options: {message}")


def pendulum_of(model: Any) -> Pendulum:
    """The `Pendulum` of a built-in cart-pole or rotary pendulum; PluginError for any other."""
    name = getattr(model, "name", None)
    p: Any = getattr(model, "params", None)
    if name == "cartpole":
        m, c, g = p.pole_mass_kg, p.pole_com_m, p.gravity_mps2
        return Pendulum(0, 1, 2, 3, p.pole_inertia_kgm2 + m * c * c, m * g * c, c, 1.0, g)
    if name == "rotary":
        m, half, g = p.pendulum_mass_kg, 0.5 * p.pendulum_length_m, p.gravity_mps2
        return Pendulum(0, 1, 2, 3, p.pendulum_inertia_kgm2 + m * half * half, m * g * half,
                        half, p.arm_length_m, g)
    raise PluginError(
        f"controller.name: swingup swings up the built-in plants cartpole and rotary (their "
        f"pendulum's energy and its pivot's motion); this plant is {name!r}. Use a law of "
        f"your own for it (docs/extending.md)")


def take_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with their defaults; OptionError naming an unknown or bad one."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"swingup has no option {unknown[0]!r}; its options: "
                         f"{', '.join(OPTIONS)}")
    out = {**OPTIONS, **options}
    for key in ("catch_angle_rad", "catch_rate_rad_s", "release_angle_rad", "max_accel_g"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (math.isfinite(value) and value > 0):
            raise OptionError(f"option {key} must be a finite number > 0, got {value!r}")
        out[key] = float(value)
    target = out["energy_target"]
    if isinstance(target, bool) or not isinstance(target, (int, float)) \
            or not 0.0 <= target <= 2.0:
        raise OptionError(f"option energy_target must be a number in [0, 2] (m g l), got "
                         f"{target!r}")
    out["energy_target"] = float(target)
    if not out["catch_angle_rad"] <= out["release_angle_rad"] <= math.pi:
        raise OptionError(f"swingup needs catch_angle_rad <= release_angle_rad <= pi, got "
                         f"{out['catch_angle_rad']:g} and {out['release_angle_rad']:g}")
    if not isinstance(out["balance"], str):
        raise OptionError(f"option balance must be a law's name, got {out['balance']!r}")
    return out


def wrapped(angle: float) -> float:
    """`angle` into [-pi, pi): the short way from upright."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


class SwingUp:
    """Energy-control swing-up handing over to a balancing law (module docstring)."""

    name = "swingup"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS

    def __init__(self, gains: Sequence[float] | None = None, *, dt_s: float = 1e-3,
                 max_force_n: float | None = None, plant: Mapping[str, Any] | None = None,
                 model: Any = None, options: Mapping[str, Any] | None = None) -> None:
        self.pendulum = pendulum_of(model)
        self.options = take_options(dict(options or {}))
        self.set_gains(DEFAULT_GAINS if gains is None else gains)
        self.model = model
        inputs = model.inputs
        limit = math.inf if max_force_n is None else float(max_force_n)
        self.low = max(float(inputs.low[0]), -limit)
        self.high = min(float(inputs.high[0]), limit)
        self._p = model.params.as_array()
        self._derivatives = model.kernels.derivatives
        self._d0 = np.zeros(len(model.state_names))
        self._d1 = np.zeros(len(model.state_names))
        self.balancer = self._balancer(dt_s, max_force_n, plant, model)
        self._with_target = takes_target(self.balancer)
        self._warm_balancer(np.asarray(model.equilibrium, dtype=np.float64))
        self.mode = SWING
        self.energy = math.nan
        self.catches = 0
        self.releases = 0

    def _balancer(self, dt_s: float, max_force_n: float | None,
                  plant: Mapping[str, Any] | None, model: Any) -> Any:
        from controller_client.controllers import create_controller  # the registry holds us

        name = self.options["balance"]
        if name == self.name:
            raise OptionError("option balance cannot be swingup itself")
        gains = self.options["balance_gains"]
        return create_controller(name, None if gains is None else list(gains), dt_s=dt_s,
                                 max_force_n=max_force_n, plant=plant, model=model,
                                 options=dict(self.options["balance_options"] or {}))

    def _warm_balancer(self, upright: np.ndarray) -> None:
        """Compile the balancer's kernels now: its first call comes at the catch, mid-run."""
        if self._with_target:
            self.balancer.compute(upright.copy(), 0.0, upright.copy())
        self.balancer.compute(upright.copy(), 0.0)
        self.balancer.reset()

    def set_gains(self, gains: Sequence[float]) -> None:
        """New swing-up gains (the balancer's are its own); ValueError unless three finite
        numbers, k_energy > 0 and the base gains >= 0."""
        values = tuple(float(g) for g in gains)
        if len(values) != 3 or not all(math.isfinite(v) for v in values) \
                or values[0] <= 0 or min(values[1:]) < 0:
            raise ValueError(f"swingup takes gains {list(GAIN_NAMES)}: k_energy > 0 and the "
                             f"base gains >= 0, got {list(gains)}")
        self.gains = values

    def reset(self) -> None:
        self.mode = SWING
        self.energy = math.nan
        self.balancer.reset()

    @property
    def balancing(self) -> bool:
        return self.mode == BALANCE

    @property
    def sigma(self) -> float:
        return float(self.balancer.sigma) if self.mode == BALANCE else math.nan

    @property
    def mass_condition(self) -> float:
        return float(self.balancer.mass_condition) if self.mode == BALANCE else math.nan

    def compute(self, state: np.ndarray, t: float, target: np.ndarray | None = None) -> float:
        """The input for `state`: the balancer's inside the catch window (tracking `target`
        when it takes one), the energy law's outside it."""
        pend = self.pendulum
        theta = wrapped(float(state[pend.angle]))
        rate = float(state[pend.angle_dot])
        self.energy = pend.energy(theta, rate)
        opts = self.options
        if self.mode == SWING and abs(theta) <= opts["catch_angle_rad"] \
                and abs(rate) <= opts["catch_rate_rad_s"]:
            self.mode = BALANCE
            self.catches += 1
        elif self.mode == BALANCE and abs(theta) > opts["release_angle_rad"]:
            self.mode = SWING
            self.releases += 1
            self.balancer.reset()
        if self.mode == BALANCE:
            u = self.balancer.compute(state, t, target) if self._with_target and \
                target is not None else self.balancer.compute(state, t)
            return float(u)
        return self.swing(state, theta, rate)

    def swing(self, state: np.ndarray, theta: float, rate: float) -> float:
        """The energy law's input at `state` (angle `theta` wrapped, rate `rate`)."""
        pend = self.pendulum
        k_energy, k_base, k_base_dot = self.gains
        n = self.options["max_accel_g"]
        push = 1.0 if rate * math.cos(theta) >= 0.0 else -1.0
        excess = self.energy / pend.mgl_j - self.options["energy_target"]
        pumping = min(max(k_energy * excess * push, -n), n)
        scale = pend.pivot_per_base_m
        centring = (k_base * float(state[pend.base]) + k_base_dot / pend.omega0
                    * float(state[pend.base_dot])) * scale / pend.com_m
        accel = pend.gravity_mps2 * (pumping - centring) / scale
        self._derivatives(state, 0.0, self._p, self._d0)
        self._derivatives(state, 1.0, self._p, self._d1)
        b0 = float(self._d0[pend.base_dot])
        b1 = float(self._d1[pend.base_dot]) - b0
        return min(max((accel - b0) / b1, self.low), self.high)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "gains": dict(zip(GAIN_NAMES, self.gains, strict=True)),
                "balance": getattr(self.balancer, "name", self.options["balance"]),
                "catches": self.catches, "releases": self.releases}

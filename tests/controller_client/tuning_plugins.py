"""A lab's own plant and law, written outside the package (into a test's folder) for the
tuning tests: a pendulum on a cart in pure Python (`labcart:Cart`), the same with a numba
`derivatives_kernel` (`labcart:KernelCart`), and a state-feedback law by state name that
reads its context as hil run gives it (`lablaw:Balance`)."""

from __future__ import annotations

from pathlib import Path

PLANT = '''"""A pendulum on a cart (x, theta from upright), in pure Python."""
import math

import numpy as np
from numba import njit


class Cart:
    state_names = ("x", "theta", "x_dot", "theta_dot")
    state_units = ("m", "rad", "m/s", "rad/s")
    input_name, input_unit = "force", "N"

    def __init__(self, cart_mass_kg=1.0, pole_mass_kg=0.2, pole_com_m=0.3,
                 pole_inertia_kgm2=0.006, cart_friction_nspm=0.1, gravity_mps2=9.81,
                 max_force_n=20.0):
        self.mc, self.m, self.l = cart_mass_kg, pole_mass_kg, pole_com_m
        self.inertia, self.b, self.g = pole_inertia_kgm2, cart_friction_nspm, gravity_mps2
        self.input_limit = max_force_n

    def derivatives(self, state, u):
        x, th, v, w = state
        s, c = math.sin(th), math.cos(th)
        m, l = self.m, self.l
        a11, a12, a22 = self.mc + m, m * l * c, m * l * l + self.inertia
        r1 = u + m * l * s * w * w - self.b * v
        r2 = m * self.g * l * s
        det = a11 * a22 - a12 * a12
        return np.array([v, w, (a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det])


@njit(cache=True)
def cart_kernel(state, u, out):
    """Cart.derivatives with its default parameters, compiled."""
    th, v, w = state[1], state[2], state[3]
    s, c = math.sin(th), math.cos(th)
    m, l = 0.2, 0.3
    a11, a12, a22 = 1.0 + m, m * l * c, m * l * l + 0.006
    r1 = u + m * l * s * w * w - 0.1 * v
    r2 = m * 9.81 * l * s
    det = a11 * a22 - a12 * a12
    out[0], out[1] = v, w
    out[2], out[3] = (a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det


class KernelCart(Cart):
    derivatives_kernel = staticmethod(cart_kernel)
'''

LAW = '''"""State feedback u = K (x - x_eq) by the plant's state names, in pure Python."""
import numpy as np


class Balance:
    gain_names = ("k_x", "k_theta", "k_x_dot", "k_theta_dot")
    default_gains = (1.5, 30.0, 2.5, 5.0)  # stable, slow: the LQR's are (4.2, 44, 5.6, 8.3)

    def __init__(self, gains, **context):
        plant, model = context["plant"], context["model"]
        if list(plant["state_names"]) != list(model.state_names):
            raise ValueError("the plant's description and its model disagree")
        self.limit, self.eq = context["max_force_n"], np.array(plant["equilibrium"])
        self.k = np.array(gains, dtype=float)

    def compute(self, state, t):
        u = float(self.k @ (state - self.eq))
        return min(max(u, -self.limit), self.limit)
'''


def write_plugins(folder: Path) -> Path:
    """labcart.py and lablaw.py in `folder`; returns it."""
    (folder / "labcart.py").write_text(PLANT)
    (folder / "lablaw.py").write_text(LAW)
    return folder

"""`hil new controller NAME` / `hil new plant NAME [--inputs 2]`: a working, commented
starting point.

Writes NAME.py and NAME.yaml into the current folder; `hil run --config NAME.yaml` runs them
at once (the config's folder is on the import path). The controller is a state-feedback law
that balances the default plant (the double inverted pendulum); the plant is a single
pendulum on a cart (one input), or with `--inputs 2` a planar bicopter (two thrusts), each
balanced by the built-in `lqr`. docs/extending.md walks through all three.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hil.app.exits import EXIT_OK, EXIT_USAGE

_CONTROLLER = '''"""{name}: a control law of your own for hil-runtime (docs/extending.md).

Run it:  hil run --config {name}.yaml
Change its gains while it runs:  hil gains --endpoint tcp://127.0.0.1:5600 k_x=35
"""

import numpy as np


class {cls}:
    # One name per gain: `hil gains` prints and sets them by these names.
    gain_names = ("k_x", "k_theta1", "k_theta2", "k_x_dot", "k_theta1_dot", "k_theta2_dot")
    # u = -K x. These balance the default plant (the double inverted pendulum on a cart):
    # the LQR gains of its linearisation at upright (hil's lqr with its default weights).
    default_gains = (31.62, -633.6, 945.1, 46.97, -8.545, 131.2)

    def __init__(self, gains, **context):
        # context: dt_s (the control period), max_force_n (the input limit), plant (the
        # plant's description: state_names, state_units, ...), model, options (from the YAML).
        self.limit = context["max_force_n"]
        self.set_gains(gains)

    def set_gains(self, gains):
        """Called by `hil gains` between two controls. Raise ValueError to refuse gains."""
        k = np.array(gains, dtype=float)
        if k.shape != (6,):
            raise ValueError(f"need 6 gains, got {{k.size}}")
        self.k = k

    def compute(self, state, t):
        """The input (force, N) for `state` (a float64 array) at run time `t` (s)."""
        u = -float(self.k @ state)
        return min(max(u, -self.limit), self.limit)

    def reset(self):
        """Forget internal state before a run (this law has none)."""
'''

_CONTROLLER_YAML = '''# hil run --config {name}.yaml
run:
  mode: realtime        # or lockstep: as fast as the link allows, deterministic
  duration_s: 5
controller:
  name: "{name}:{cls}"  # {name}.py beside this file, class {cls}
plant:
  model: dip
  initial_state: [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]
'''

_PLANT = '''"""{name}: a plant model of your own for hil-runtime (docs/extending.md).

A single pendulum on a cart: the cart (mass M) moves along x under the force u; the pole
(mass m, centre of mass l from the pivot, inertia I about it) is at angle theta from upright.
Lagrange's equations give M(q) q'' = rhs with

    [[M + m,        m l cos th],   [x'' ]   [u + m l sin th th'^2 - b x']
    [[m l cos th,   m l^2 + I ]] @ [th''] = [m g l sin th               ]

Run it:  hil run --config {name}.yaml   (balanced by the built-in lqr)
"""

import math

import numpy as np


class {cls}:
    state_names = ("x", "theta", "x_dot", "theta_dot")
    state_units = ("m", "rad", "m/s", "rad/s")   # "rad": an angle from upright
    input_name = "force"
    input_unit = "N"

    def __init__(self, cart_mass_kg=1.0, pole_mass_kg=0.1, pole_com_m=0.25,
                 pole_inertia_kgm2=0.1 * 0.5**2 / 12, cart_friction_nspm=0.1,
                 gravity_mps2=9.81, max_force_n=20.0):
        # plant.params in the YAML override these keyword arguments.
        self.mc, self.m, self.l = cart_mass_kg, pole_mass_kg, pole_com_m
        self.inertia, self.b, self.g = pole_inertia_kgm2, cart_friction_nspm, gravity_mps2
        self.input_limit = max_force_n   # the input saturates here

    def derivatives(self, state, u):
        """d state / dt at `state` under the input `u` (not saturated)."""
        x, th, v, w = state
        s, c = math.sin(th), math.cos(th)
        m, l = self.m, self.l
        a11, a12, a22 = self.mc + m, m * l * c, m * l * l + self.inertia
        r1 = u + m * l * s * w * w - self.b * v
        r2 = m * self.g * l * s
        det = a11 * a22 - a12 * a12
        return np.array([v, w, (a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det])
'''

_PLANT_YAML = '''# hil run --config {name}.yaml
run:
  mode: realtime
  duration_s: 5
plant:
  model: "{name}:{cls}"   # {name}.py beside this file, class {cls}
  params: {{}}              # keyword arguments of {cls}.__init__
  initial_state: [0.0, 0.1, 0.0, 0.0]
controller:
  name: lqr               # linearises {cls} about upright and solves the Riccati equation
'''


_PLANT_2 = '''"""{name}: a plant model of your own with two inputs, for hil-runtime
(docs/extending.md).

A planar bicopter: a body of mass m (inertia I about its centre) with two rotors a distance
l either side of the centre, each pushing along the body's up axis: thrust_left T1 and
thrust_right T2. x is to the right, z up, phi the roll (+ counter-clockwise seen from the
front, so + when the right side is up). Newton and Euler give

    m x''   = -(T1 + T2) sin(phi)
    m z''   =  (T1 + T2) cos(phi) - m g
    I phi'' =  l (T2 - T1)

It hovers at rest at z = 1 m with T1 = T2 = m g / 2 (the trim input: the runtime finds it,
or declare it as equilibrium_input). Rotors only push: each thrust is limited to 0..40 N.

Run it:  hil run --config {name}.yaml   (held by the built-in lqr, both inputs)
"""

import math

import numpy as np


class {cls}:
    state_names = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
    state_units = ("m", "m", "rad", "m/s", "m/s", "rad/s")
    input_names = ("thrust_left", "thrust_right")   # derivatives gets u as an array of 2
    input_units = ("N", "N")
    input_limits = ((0.0, 40.0), (0.0, 40.0))        # per input: L (-L..L) or (low, high)
    equilibrium = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)     # the state to hold
    # equilibrium_input = (19.62, 19.62)             # optional trim; found if absent
    # regulated_states: the states the verdict checks (default: positions and angles)

    def __init__(self, mass_kg=4.0, arm_m=0.25, inertia_kgm2=0.05, gravity_mps2=9.81):
        # plant.params in the YAML override these keyword arguments.
        self.m, self.l, self.inertia, self.g = mass_kg, arm_m, inertia_kgm2, gravity_mps2

    def derivatives(self, state, u):
        """d state / dt at `state` under the thrusts `u` = [T1, T2] (not saturated)."""
        x, z, phi, x_dot, z_dot, phi_dot = state
        thrust = u[0] + u[1]
        return np.array([
            x_dot,
            z_dot,
            phi_dot,
            -thrust * math.sin(phi) / self.m,
            thrust * math.cos(phi) / self.m - self.g,
            self.l * (u[1] - u[0]) / self.inertia,
        ])
'''

_PLANT_2_YAML = '''# hil run --config {name}.yaml
run:
  mode: realtime
  duration_s: 5
plant:
  model: "{name}:{cls}"   # {name}.py beside this file, class {cls}
  params: {{}}              # keyword arguments of {cls}.__init__
  initial_state: [0.1, 0.9, 0.05, 0.0, 0.0, 0.0]
controller:
  name: lqr               # linearises {cls} about its equilibrium and trim, both inputs
'''

TEMPLATES = {("controller", 1): (_CONTROLLER, _CONTROLLER_YAML),
             ("plant", 1): (_PLANT, _PLANT_YAML),
             ("plant", 2): (_PLANT_2, _PLANT_2_YAML)}


def add_parser(sub: Any) -> None:
    op = sub.add_parser("new", help="write a starting control law or plant model here")
    op.add_argument("kind", choices=("controller", "plant"))
    op.add_argument("name", help="a Python module name, e.g. mylaw")
    op.add_argument("--inputs", type=int, default=1,
                    help="plant: its number of inputs, 1 (a cart-pole) or 2 (a bicopter)")
    op.set_defaults(handler=new_command)


def new_command(args: argparse.Namespace) -> int:
    name = args.name
    if not name.isidentifier() or name.startswith("_"):
        print(f"hil new: NAME must be a Python module name (letters, digits, _), got {name!r}",
              file=sys.stderr)
        return EXIT_USAGE
    cls = "".join(part.capitalize() for part in name.split("_")) or name
    inputs = getattr(args, "inputs", 1)
    if (args.kind, inputs) not in TEMPLATES:
        fix = ("give --inputs 1 (a cart-pole) or 2 (a bicopter)" if args.kind == "plant" else
               "leave --inputs out: a law returns one number per input of whatever plant")
        print(f"hil new {args.kind}: no template with --inputs {inputs}; {fix}",
              file=sys.stderr)
        return EXIT_USAGE
    code, yaml = TEMPLATES[args.kind, inputs]
    files = {Path(f"{name}.py"): code, Path(f"{name}.yaml"): yaml}
    existing = [str(p) for p in files if p.exists()]
    if existing:
        print(f"hil new: {', '.join(existing)} already exist(s); choose another NAME or "
              f"move them away", file=sys.stderr)
        return EXIT_USAGE
    for path, text in files.items():
        path.write_text(text.format(name=name, cls=cls))
    print(f"wrote {name}.py ({args.kind} class {cls}) and {name}.yaml; run it with:\n"
          f"  hil run --config {name}.yaml")
    return EXIT_OK

"""A lab's plug-in plant for the experiment tests: a 1 kg cart on a rail with viscous
friction (0.5 N s/m), one force input limited to 50 N, written to a folder and loaded from
it as `hil run` loads a lab's model (create_model's search path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil.dynamics import create_model

CART = """
import numpy as np


class Cart:
    state_names = ("x", "x_dot")
    state_units = ("m", "m/s")
    input_names = ("force",)
    input_units = ("N",)
    input_limits = (50.0,)

    def derivatives(self, state, u):
        return np.array([state[1], (u[0] - 0.5 * state[1]) / 1.0])
"""


def cart_model(folder: Path, substeps: int = 4) -> Any:
    """The cart written to `folder`/cart.py and loaded from there, as `cart:Cart`."""
    (folder / "cart.py").write_text(CART)
    return create_model("cart:Cart", {}, substeps=substeps, search_path=[str(folder)])

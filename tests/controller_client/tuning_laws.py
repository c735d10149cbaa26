"""A law with only a Python `compute` for the tuning tests ("tuning_laws:PythonSMC")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from controller_client.controllers import create_controller


class PythonSMC:
    """The classical SMC called through Python only: no kernel, no kernel arrays."""

    gain_names = ("k1", "k2", "lambda1", "lambda2", "K", "kd")
    default_gains = (2.0, 16.0, 42.0, 7.2, 20.0, 5.0)

    def __init__(self, gains: Sequence[float], **context: Any) -> None:
        self._inner = create_controller("classical_smc", list(gains), dt_s=context["dt_s"])

    def reset(self) -> None:
        self._inner.reset()

    def compute(self, state: np.ndarray, t: float) -> float:
        return float(self._inner.compute(state, t))

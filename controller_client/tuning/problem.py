"""What a tuning optimises: the settings, the seeded plant draws, the bounds and the cost.

Everything here is a pure function of the settings, so a tuning gives the same answer on
one machine, on a Dask cluster and after a resume (docs/tuning.md).

**Draws** (`plants.draw_params`): plant k of stream `stream` comes from
`numpy.random.default_rng([seed, stream])`, each physical parameter times a factor near 1
(plants.py says which). Stream 0 is what the optimiser sees, stream 1 the held-out check.

**Cost** of one evaluation (one plant, one start), lower is better (weights in `WEIGHTS`):

    angle ISE + 0.1 position ISE + 1e-6 effort + 1e-4 chattering

or, with `tuning.cost` (an experiment's metrics, controller_client/tuning/experiment.py),
the sum of each named metric's magnitude times its weight (a draw on which one cannot be
measured fails); summed over the starts; a candidate's cost over the draws is
`mean_weight * mean + (1 - mean_weight) * max` (0.7 and 0.3 by default, as in the research
project). **The safety gates are a hard constraint**: a draw on which the plant's gates trip
is a failure, not a cost; a candidate that fails on any draw costs `FAILED_COST` times
(1 + the share of its runs it did not survive), more than any candidate that passes them
all (a passing draw's cost is kept below `FAILED_COST`), and is never the tuning's answer
while one passes. A candidate the law refuses, or whose sliding surface has unstable zero
dynamics, is not simulated: it costs `INFEASIBLE_COST` plus how far it is from feasible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from controller_client.tuning.batch import (
    M_ANGLE,
    M_CHATTER,
    M_EFFORT,
    M_FALLEN,
    M_POSITION,
    M_STEPS,
)
from controller_client.tuning.plants import PlantSpec, plant_spec
from hil.dynamics.dip import DIPParams

OPTIMIZERS = ("pso", "cma", "de")
# The regulation cost's weights of the figures of batch.py (without tuning.cost).
WEIGHTS = {"angle": 1.0, "position": 0.1, "effort": 1e-6, "chatter": 1e-4}
FAILED_COST = 1e6
INFEASIBLE_COST = 3.0 * FAILED_COST
TRAIN_STREAM, HELD_OUT_STREAM = 0, 1
ZERO_DYNAMICS_MARGIN = -0.1  # 1/s: the slowest zero-dynamics mode must decay at least this fast
# Gain names of the shared sliding surface (controllers/nominal.py), per naming scheme.
_SURFACE_NAMES = (("k1", "k2", "lambda1", "lambda2"), ("c1", "c2", "lambda1", "lambda2"))


class TuningError(ValueError):
    """The tuning cannot start as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class Settings:
    """Everything that determines a tuning's answer (saved in tuning.json, used on resume)."""

    controller: str
    options: dict[str, Any] = field(default_factory=dict)
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    budget: int = 200
    draws: int = 8
    uncertainty: float = 0.05
    seed: int = 0
    optimizer: str = "pso"
    batch_size: int = 20
    duration_s: float = 3.0
    rate_hz: float = 1000.0
    delay: float = 1.0
    substeps: int = 4
    starts: tuple[tuple[float, ...], ...] = ((0.0, 0.1, -0.05, 0.0, 0.0, 0.0),)
    plant_params: dict[str, Any] = field(default_factory=dict)
    angle_limit_rad: float | None = 1.0  # None: the gate is off
    track_limit_m: float | None = 2.0
    mean_weight: float = 0.7
    search_path: tuple[str, ...] = ()  # folders searched first for a "module:Class" law/plant
    plant_model: str = "dip"  # plant.model of the run config
    sanity_factor: float = 10.0  # safety.sanity_force_factor: an input beyond it trips
    plant_fmu: str | None = None  # plant.fmu (resolved), for plant.model fmu
    plant_fmu_outputs: tuple[str, ...] | None = None
    experiment: dict[str, Any] | None = None  # the config's experiment section (JSON)
    experiment_dir: str | None = None  # the config file's folder (a csv reference's file)
    cost: dict[str, float] = field(default_factory=dict)  # tuning.cost: metric -> weight

    def plant(self) -> PlantSpec:
        """The spec of the plant tuned on (plants.PlantSpec)."""
        return plant_spec(self.plant_model, self.plant_params, self.substeps, self.search_path,
                          self.plant_fmu, self.plant_fmu_outputs)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lower"], d["upper"] = list(self.lower), list(self.upper)
        d["starts"] = [list(s) for s in self.starts]
        d["search_path"] = list(self.search_path)
        if self.plant_fmu_outputs is not None:
            d["plant_fmu_outputs"] = list(self.plant_fmu_outputs)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Settings:
        d = dict(d)
        d["lower"], d["upper"] = tuple(d["lower"]), tuple(d["upper"])
        d["starts"] = tuple(tuple(s) for s in d["starts"])
        d["search_path"] = tuple(d.get("search_path", ()))
        if d.get("plant_fmu_outputs") is not None:
            d["plant_fmu_outputs"] = tuple(d["plant_fmu_outputs"])
        return cls(**d)


def check_settings(s: Settings) -> None:
    """Raise TuningError for a budget, draw count, uncertainty or optimiser out of range."""
    if s.budget < 1:
        raise TuningError(f"--budget must be >= 1 evaluation, got {s.budget}")
    if s.draws < 1:
        raise TuningError(f"--draws must be >= 1 plant draw, got {s.draws}")
    if not (math.isfinite(s.uncertainty) and 0.0 <= s.uncertainty <= 0.5):
        raise TuningError(f"--uncertainty must be within [0, 0.5] (0.05 is +-5 %), got "
                          f"{s.uncertainty}")
    if s.optimizer not in OPTIMIZERS:
        raise TuningError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                          f"{s.optimizer!r}")
    if s.batch_size < 1:
        raise TuningError(f"batch size must be >= 1, got {s.batch_size}")
    if not 0.0 <= s.mean_weight <= 1.0:
        raise TuningError(f"tuning.mean_weight must be within [0, 1], got {s.mean_weight}")


def default_bounds(default_gains: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Half to twice each default gain."""
    return (tuple(0.5 * g for g in default_gains), tuple(2.0 * g for g in default_gains))


def law_bounds(law: Any, overrides: Mapping[str, Sequence[float]] | None = None
               ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The box to search: the law's `tuning_bounds` if it has them, else `default_bounds`,
    with `overrides` (gain name -> [low, high], from the config) on top."""
    names = tuple(law.gain_names)
    own = getattr(law, "tuning_bounds", None)
    if own is not None:
        lower, upper = (tuple(float(v) for v in side) for side in own)
    else:
        lower, upper = default_bounds(law.default_gains)
    lo, hi = list(lower), list(upper)
    for name, pair in (overrides or {}).items():
        if name not in names:
            raise TuningError(f"tuning.bounds names gain {name!r}, which {law.name} does not "
                              f"have; its gains: {', '.join(names)}")
        if len(pair) != 2 or not all(math.isfinite(float(v)) for v in pair):
            raise TuningError(f"tuning.bounds.{name} must be [low, high], got {pair!r}")
        i = names.index(name)
        lo[i], hi[i] = float(pair[0]), float(pair[1])
    for name, a, b in zip(names, lo, hi, strict=True):
        if not a < b:
            raise TuningError(f"bounds of gain {name} must have low < high, got [{a}, {b}]; "
                              f"fix tuning.bounds.{name}")
    return tuple(lo), tuple(hi)


def surface_indices(gain_names: Sequence[str]) -> tuple[int, ...] | None:
    """Indices of (k1, k2, lambda1, lambda2) when the law uses the shared sliding surface."""
    for names in _SURFACE_NAMES:
        if all(n in gain_names for n in names):
            return tuple(list(gain_names).index(n) for n in names)
    return None


class ZeroDynamics:
    """The slowest zero-dynamics mode of the shared sliding surface, at upright.

    On sigma = C x = 0 the equivalent control leaves x' = (I - B C / (C B)) A x: one
    eigenvalue 0 (the sigma direction) and five zero-dynamics eigenvalues
    (tests/controller_client/test_zero_dynamics.py).
    """

    def __init__(self, params: DIPParams, cart_gain: float, cart_lambda: float) -> None:
        from controller_client.controllers.riccati import linearise

        self.a, b = linearise(params)
        self.b = np.asarray(b, dtype=float).ravel()
        self.cart_gain, self.cart_lambda = cart_gain, cart_lambda

    def slowest(self, k1: float, k2: float, l1: float, l2: float) -> float:
        kc, lc = self.cart_gain, self.cart_lambda
        c = np.array([-kc * lc, k1 * l1, -k2 * l2, -kc, k1, -k2])
        cb = float(c @ self.b)
        if abs(cb) < 1e-9:
            return math.inf
        eig = np.linalg.eigvals((np.eye(6) - np.outer(self.b, c) / cb) @ self.a)
        eig = np.delete(eig, np.argmin(np.abs(eig)))
        return float(eig.real.max())


def evaluation_costs(metrics: np.ndarray, steps: int,
                     weights: Mapping[int, float] | None = None) -> np.ndarray:
    """(..., draws) costs from (..., draws, starts, columns) metrics: summed over the starts;
    a draw on which a gate tripped costs FAILED_COST (1 + the share of its steps not run).

    `weights` (column -> weight: the experiment's metrics of `tuning.cost`) replace the
    regulation figures of WEIGHTS by the weighted magnitudes of those metrics; a draw on
    which one of them cannot be measured fails too (as if tripped at its end)."""
    tripped = (metrics[..., M_FALLEN] > 0).any(axis=-1)
    if weights:
        values = np.stack([w * np.abs(metrics[..., c]) for c, w in weights.items()])
        cost = values.sum(axis=0)
        tripped = tripped | np.isnan(cost).any(axis=-1)
        cost = np.nan_to_num(cost, nan=0.0)
    else:
        w = WEIGHTS
        cost = (w["angle"] * metrics[..., M_ANGLE] + w["position"] * metrics[..., M_POSITION]
                + w["effort"] * metrics[..., M_EFFORT]
                + w["chatter"] * metrics[..., M_CHATTER])
    passed = np.minimum(cost.sum(axis=-1), np.nextafter(FAILED_COST, 0.0))
    lost = ((steps - metrics[..., M_STEPS]) / steps).mean(axis=-1)
    return np.asarray(np.where(tripped, FAILED_COST * (1.0 + lost), passed))


def failed_draws(per_draw: np.ndarray) -> np.ndarray:
    """How many draws failed (a gate tripped), over the last axis."""
    return np.asarray((per_draw >= FAILED_COST).sum(axis=-1))


def robust_cost(per_draw: np.ndarray, mean_weight: float) -> np.ndarray:
    """mean_weight * mean + (1 - mean_weight) * max over the last axis (the draws) when every
    draw passed the gates; FAILED_COST (1 + the mean share not survived) when one failed."""
    robust = mean_weight * per_draw.mean(axis=-1) + (1.0 - mean_weight) * per_draw.max(axis=-1)
    share = np.where(per_draw >= FAILED_COST, per_draw / FAILED_COST - 1.0, 0.0)
    failed = FAILED_COST * (1.0 + share.mean(axis=-1))
    return np.asarray(np.where(failed_draws(per_draw) > 0, failed, robust))

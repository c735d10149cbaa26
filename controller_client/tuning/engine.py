"""The tuning loop: nevergrad ask/tell in batches, the robust cost, replay on resume.

`Problem` turns gain rows into costs (feasibility first, then the compiled batch on the
evaluator, then `problem.robust_cost`). `optimise` asks the optimiser for a batch, scores it
as a whole, tells the costs back, and appends the batch to the history. The optimiser is
seeded from the settings, and each batch's costs depend only on its gains and the seeded
draws, so the same settings give the same history anywhere. On resume the saved history is
replayed: the optimiser asks again (the candidates must come out identical, which the replay
checks) and is told the saved costs, so nothing is evaluated twice and the run continues as
if it had never stopped.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from controller_client.controllers import GainError, create_controller
from controller_client.tuning.batch import METRICS, Scenario, compiled, run_batch
from controller_client.tuning.experiment import (
    CostError,
    check_cost,
    experiment_spec,
    sensor_noise,
)
from controller_client.tuning.plants import (
    PlantSpec,
    dip_params,
    draw_params,
    packed_params,
    plant_facts,
    plant_model,
)
from controller_client.tuning.problem import (
    HELD_OUT_STREAM,
    INFEASIBLE_COST,
    TRAIN_STREAM,
    ZERO_DYNAMICS_MARGIN,
    Settings,
    TuningError,
    ZeroDynamics,
    evaluation_costs,
    robust_cost,
    surface_indices,
)
from hil.dynamics.dip import DIPModel

_NUMBA_LOCK = threading.Lock()  # numba's workqueue layer runs one parallel region at a time


class Evaluator(Protocol):
    """Runs a batch's closed loops somewhere: this process's threads or a Dask cluster."""

    workers: int

    def metrics(self, rows: np.ndarray, scenario: Scenario) -> np.ndarray: ...

    def close(self) -> None: ...


def build_law(controller: str, gains: Sequence[float] | None, options: dict[str, Any],
              dt_s: float, search_path: Sequence[str] = (),
              plant: PlantSpec | None = None) -> Any:
    """The law through the registry: built-in, entry point, or "module:Class" (searched
    first in `search_path`, the config file's folder), with the context `hil run` gives it
    (controller_client.main.law_from_config): dt_s and max_force_n (the options' if they
    set them), the plant's description, its nominal model, and the other options."""
    options = dict(options)
    context: dict[str, Any] = {"dt_s": options.pop("dt_s", dt_s)}
    if plant is not None:
        model = plant_model(plant)
        context.update(plant=model.describe(), model=model,
                       max_force_n=options.pop("max_force_n", model.max_force_n))
    context["options"] = options
    return create_controller(controller, None if gains is None else list(gains),
                             search_path=tuple(search_path), **context)


def law_factory(controller: str, options: dict[str, Any], dt_s: float,
                search_path: Sequence[str] = (),
                plant: PlantSpec | None = None) -> Callable[[Sequence[float]], Any]:
    def make(gains: Sequence[float]) -> Any:
        return build_law(controller, gains, options, dt_s, search_path, plant)
    return make


def evaluate_rows(controller: str, options: dict[str, Any], rows: np.ndarray,
                  scenario: Scenario, search_path: Sequence[str] = (),
                  plant: PlantSpec | None = None) -> np.ndarray:
    """Metrics of `rows` (the unit of work a Dask worker runs; module level to be importable)."""
    make = law_factory(controller, options, scenario.dt_s, search_path, plant)
    with _NUMBA_LOCK:
        return run_batch(make, rows, scenario)


class LocalEvaluator:
    """This process: the compiled batch on `workers` threads (numba.set_num_threads); a law
    or plant simulated in Python on `workers` processes (the rows split among them)."""

    def __init__(self, controller: str, options: dict[str, Any], workers: int,
                 search_path: Sequence[str] = (), plant: PlantSpec | None = None) -> None:
        import numba

        self.controller, self.options, self.search_path = controller, options, search_path
        self.plant = plant
        self.requested = max(1, workers)
        self.workers = max(1, min(workers, numba.config.NUMBA_NUM_THREADS))
        self._pool: Any = None
        numba.set_num_threads(self.workers)

    def metrics(self, rows: np.ndarray, scenario: Scenario) -> np.ndarray:
        import numba

        if self.requested > 1 and len(rows) > 1 and not self._compiled(rows[0], scenario):
            return self._in_processes(rows, scenario)
        # numba's thread count is per calling thread and per process: set it for every batch,
        # so two evaluators in one process (the benchmark) or a call from another thread each
        # run on their own count.
        numba.set_num_threads(self.workers)
        return evaluate_rows(self.controller, self.options, rows, scenario, self.search_path,
                             self.plant)

    def _compiled(self, row: np.ndarray, scenario: Scenario) -> bool:
        law = build_law(self.controller, tuple(float(v) for v in row), self.options,
                        scenario.dt_s, self.search_path, self.plant)
        return compiled(law, scenario)

    def _in_processes(self, rows: np.ndarray, scenario: Scenario) -> np.ndarray:
        """The Python path on `requested` worker processes (started once, spawned: a fork
        of a process running numba's threads is not safe)."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.requested,
                                             mp_context=multiprocessing.get_context("spawn"))
            self.workers = self.requested
        chunks = [c for c in np.array_split(rows, min(len(rows), self.requested)) if len(c)]
        futures = [self._pool.submit(evaluate_rows, self.controller, self.options, chunk,
                                     scenario, tuple(self.search_path), self.plant)
                   for chunk in chunks]
        return np.concatenate([f.result() for f in futures], axis=0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class Problem:
    """Gain rows -> robust costs for one tuning's settings."""

    def __init__(self, settings: Settings, evaluator: Evaluator) -> None:
        s = settings
        self.settings = s
        self.evaluator = evaluator
        self.plant = s.plant()
        self.make_law = law_factory(s.controller, dict(s.options), 1.0 / s.rate_hz,
                                    s.search_path, self.plant)
        law = self.make_law(None)
        self.gain_names = tuple(law.gain_names)
        self.default_gains = tuple(float(g) for g in law.default_gains)
        self.steps = max(1, round(s.duration_s * s.rate_hz))
        model = plant_model(self.plant)
        self.facts = plant_facts(model, s.angle_limit_rad, s.track_limit_m, s.sanity_factor)
        self.experiment = None if s.experiment is None else experiment_spec(
            s.experiment, model, s.rate_hz, s.experiment_dir)
        try:
            check_cost(s.cost, self.experiment)
        except CostError as exc:
            raise TuningError(str(exc)) from None
        names = () if self.experiment is None else self.experiment.names
        self.metric_names: tuple[str, ...] = names
        self.weights = {METRICS + names.index(k): float(w) for k, w in s.cost.items()}
        self.train = self.scenario(TRAIN_STREAM)
        self.held_out = self.scenario(HELD_OUT_STREAM)
        self.compiled = compiled(law, self.train)
        self._surface = self._zero_dynamics(law)

    def _zero_dynamics(self, law: Any) -> tuple[int, ...] | None:
        """The gains of the shared sliding surface, when the law has one on the DIP (the
        zero-dynamics check applies), else None."""
        surface = surface_indices(self.gain_names)
        options = getattr(law, "options", {})
        if surface is None or not isinstance(plant_model(self.plant), DIPModel) \
                or "cart_gain" not in options or "cart_lambda" not in options:
            return None
        self._zero = ZeroDynamics(dip_params(self.plant), options["cart_gain"],
                                  options["cart_lambda"])
        return surface

    def scenario(self, stream: int) -> Scenario:
        s = self.settings
        draws = draw_params(self.plant, s.seed, stream, s.draws, s.uncertainty)
        for draw in draws:
            plant_model(self.plant, draw)  # a draw the plant refuses is refused here
        noise = sensor_noise(self.experiment, s.seed, stream, s.draws, self.steps,
                             self.facts.n_states)
        return Scenario(self.plant, draws, packed_params(self.plant, draws),
                        np.array(s.starts, dtype=float), self.steps, 1.0 / s.rate_hz,
                        s.substeps, s.delay, self.facts, self.experiment, noise)

    def infeasibility(self, row: Sequence[float]) -> float | None:
        """None if `row` can be simulated, else a cost that grows with how far off it is."""
        try:
            self.make_law(row)
        except (GainError, ValueError):
            return 2.0 * INFEASIBLE_COST
        if self._surface is not None:
            slowest = self._zero.slowest(*(row[i] for i in self._surface))
            if not slowest < ZERO_DYNAMICS_MARGIN:
                return INFEASIBLE_COST + min(math.fabs(slowest - ZERO_DYNAMICS_MARGIN), 1e3)
        return None

    def per_draw(self, rows: np.ndarray, scenario: Scenario) -> np.ndarray:
        """(N, draws) costs; an infeasible row costs its infeasibility on every draw."""
        return self.evaluate(rows, scenario)[0]

    def evaluate(self, rows: np.ndarray, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
        """((N, draws) costs, (N, draws, starts, experiment metrics) values, NaN where not
        simulated or a gate tripped)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        out = np.empty((rows.shape[0], scenario.n_draws))
        values = np.full((rows.shape[0], scenario.n_draws, scenario.starts.shape[0],
                          scenario.n_metrics), np.nan)
        feasible = []
        for i, row in enumerate(rows):
            penalty = self.infeasibility(row)
            if penalty is None:
                feasible.append(i)
            else:
                out[i] = penalty
        if feasible:
            metrics = self.evaluator.metrics(rows[feasible], scenario)
            out[feasible] = evaluation_costs(metrics, scenario.steps, self.weights)
            values[feasible] = metrics[..., METRICS:]
        return out, values

    def costs(self, rows: np.ndarray, scenario: Scenario | None = None) -> np.ndarray:
        return robust_cost(self.per_draw(rows, scenario or self.train),
                           self.settings.mean_weight)


@dataclass(frozen=True)
class Batch:
    candidates: list[list[float]]
    costs: list[float]


class ReplayMismatch(RuntimeError):
    """The optimiser asked for other candidates than the saved history holds."""


def make_optimizer(s: Settings, dimension: int) -> Any:
    import nevergrad as ng

    lower, upper = np.array(s.lower), np.array(s.upper)
    param = ng.p.Array(init=np.clip((lower + upper) / 2.0, lower, upper))
    param.set_bounds(lower, upper, method="clipping")
    param.set_mutation(sigma=(upper - lower) / 6.0)
    param.random_state = np.random.RandomState(s.seed)
    cls = {"pso": ng.optimizers.PSO, "cma": ng.optimizers.CMA,
           "de": ng.optimizers.TwoPointsDE}[s.optimizer]
    return cls(parametrization=param, budget=s.budget, num_workers=s.batch_size)


def optimise(problem: Problem, history: list[Batch], *,
             on_batch: Callable[[list[Batch]], None] = lambda h: None,
             should_stop: Callable[[], bool] = lambda: False) -> list[Batch]:
    """Continue `history` (replayed, not re-evaluated) up to the budget; return it.

    Stops early, after a whole batch, when `should_stop()` says so.
    """
    s = problem.settings
    opt = make_optimizer(s, len(problem.gain_names))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nevergrad's advice on bound widths
        for number, batch in enumerate(history):
            asked = [opt.ask() for _ in batch.candidates]
            for cand, saved, cost in zip(asked, batch.candidates, batch.costs, strict=True):
                if not np.array_equal(cand.value, np.array(saved)):
                    raise ReplayMismatch(
                        f"batch {number}: the optimiser asked for {list(cand.value)}, the "
                        f"saved history has {saved}; the history was written with other "
                        f"settings or another nevergrad version; start a new tuning")
                opt.tell(cand, cost)
        done = sum(len(b.costs) for b in history)
        while done < s.budget and not should_stop():
            n = min(s.batch_size, s.budget - done)
            asked = [opt.ask() for _ in range(n)]
            rows = np.array([c.value for c in asked], dtype=float)
            costs = problem.costs(rows)
            for cand, cost in zip(asked, costs, strict=True):
                opt.tell(cand, float(cost))
            history.append(Batch(rows.tolist(), [float(c) for c in costs]))
            done += n
            on_batch(history)
    return history


def best_of(history: Sequence[Batch]) -> tuple[list[float], float, int]:
    """(gains, cost, evaluation index) of the lowest cost so far (the earliest on ties)."""
    best: tuple[list[float], float, int] = ([], math.inf, -1)
    index = 0
    for batch in history:
        for cand, cost in zip(batch.candidates, batch.costs, strict=True):
            if cost < best[1]:
                best = (cand, cost, index)
            index += 1
    return best

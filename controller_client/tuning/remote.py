"""Batches on a Dask distributed cluster (`dask scheduler` + `dask worker`, docs/tuning.md).

A batch is cut into chunks of rows, one task each (`engine.evaluate_rows`, imported by the
workers from this package); the scenario (plants, starts) is scattered to every worker once
per scenario. Workers keep their process and so their compiled kernels (and numba's disk
cache spares even the first compile). A task is pure: if its worker dies, the scheduler
runs it again on another, and since each row's figures depend on nothing but the row and
the scenario, the batch's result is the same. Results are gathered in row order.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from controller_client.tuning.batch import Scenario
from controller_client.tuning.engine import evaluate_rows
from controller_client.tuning.plants import PlantSpec
from hil.cli.tune import CONNECT_TIMEOUT_S

# A batch whose scattered scenario was lost with a worker is run again this often in all.
LOST_INPUT_ATTEMPTS = 3


class SchedulerUnreachable(ConnectionError):
    """No Dask scheduler answered at the address in time."""


class DaskEvaluator:
    """Sends each batch to a Dask cluster: at `scheduler`, or a local one of `workers`.

    Raises SchedulerUnreachable when no scheduler answers within `connect_timeout_s`.
    """

    def __init__(self, controller: str, options: dict[str, Any], *,
                 scheduler: str | None = None, workers: int = 2,
                 search_path: tuple[str, ...] = (), plant: PlantSpec | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        from distributed import Client, LocalCluster

        self.controller, self.options, self.search_path = controller, options, search_path
        self.plant = plant
        self._cluster = None
        if scheduler is None:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            address = self._cluster.scheduler_address
        else:
            address = scheduler
        started = time.monotonic()
        try:
            self.client = Client(address, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachable(
                f"no Dask scheduler answered at {address} within {connect_timeout_s:g} s "
                f"(gave up after {time.monotonic() - started:.1f} s, {type(exc).__name__}); "
                f"start one there (`dask scheduler`) or check the address") from None
        self.address = address
        self._scattered: dict[int, Any] = {}

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def metrics(self, rows: np.ndarray, scenario: Scenario) -> np.ndarray:
        from distributed.client import FutureCancelledError

        key = id(scenario)
        chunks = np.array_split(rows, min(len(rows), 2 * self.workers))
        attempt = 1
        while True:
            if key not in self._scattered:
                self._scattered[key] = (scenario, self.client.scatter(scenario, broadcast=True))
            remote_scenario = self._scattered[key][1]
            futures = [self.client.submit(evaluate_rows, self.controller, self.options, chunk,
                                          remote_scenario, self.search_path, self.plant,
                                          pure=False, retries=2)
                       for chunk in chunks if len(chunk)]
            try:
                return np.concatenate(self.client.gather(futures), axis=0)
            except FutureCancelledError:
                # The scenario was lost with a worker: the scheduler's memory manager keeps
                # one replica of scattered data, whatever `broadcast` placed, and a worker
                # killed holding it takes it along; the batch's tasks are then cancelled
                # ("already forgotten"). Tasks are pure: scatter again, run the batch again.
                del self._scattered[key]
                if attempt == LOST_INPUT_ATTEMPTS:
                    raise
                attempt += 1
                print(f"hil tune: the scenario was lost with a worker; running the batch "
                      f"again (attempt {attempt} of {LOST_INPUT_ATTEMPTS})",
                      file=sys.stderr, flush=True)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

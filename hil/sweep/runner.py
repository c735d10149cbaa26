"""Running a sweep's runs: each a real `hil run` process, here in parallel or on Dask.

`run_one` is the unit of work, the same here and on a Dask worker: it writes the run's
config beside its files (`<folder>/sweep-config.yaml`), starts `python -m hil.cli run` on
an endpoint of its own (an ipc socket named by a fresh random token, so parallel runs and
other sweeps never meet), waits for it, and returns its report.json when the run ended by
itself. It keeps `hil run`'s output in `<folder>/hil-run.log` and its exit status and wall
time in `<folder>/sweep-run.json`. It is pure in what matters: a lockstep run gives the
same report wherever it runs, so a task the scheduler runs again gives the same row.

On a cluster the workers write the run folders where the sweep's folder is: a cluster of
several machines needs that folder on a shared file system (the table and the history need
only what the tasks return; the page's plots read the recordings).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.sweep.plan import PlannedRun

CONFIG_FILE = "sweep-config.yaml"
LOG_FILE = "hil-run.log"
OUTCOME_FILE = "sweep-run.json"
# A run's report written when it was stopped rather than ending by itself.
UNFINISHED_MARKS = ("interrupted", "timed_out", "killed")
_WAIT_SLICE_S = 0.2  # the longest a stop signal waits for the sweep's main thread


class SchedulerUnreachable(ConnectionError):
    """No Dask scheduler answered at the address in time."""


@dataclass(frozen=True)
class RunOutcome:
    """How one run went: `report` is its report.json when it ended by itself, else None
    and `problem` says why (the last line `hil run` printed)."""

    index: int
    exit_code: int | None
    wall_s: float | None
    report: dict[str, Any] | None
    problem: str | None = None


def complete_report(folder: str | Path) -> dict[str, Any] | None:
    """The run's report.json if it holds a run that ended by itself, else None."""
    try:
        report = json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or "verdict" not in report \
            or any(report.get(mark) for mark in UNFINISHED_MARKS):
        return None
    return report


def recorded_outcome(run: PlannedRun) -> RunOutcome | None:
    """The outcome of a run already done (a resumed sweep), None if it is not."""
    report = complete_report(run.folder)
    if report is None:
        return None
    try:
        saved = json.loads((Path(run.folder) / OUTCOME_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    return RunOutcome(run.index, saved.get("exit_code"), saved.get("wall_s"), report)


def run_one(run: PlannedRun, started: Callable[[subprocess.Popen[bytes]], None] | None = None
            ) -> RunOutcome:
    """Run `run` as `hil run` does, and wait for it."""
    folder = Path(run.folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(run.config_yaml)
    endpoint = f"ipc://{tempfile.gettempdir()}/hil-sweep-{uuid.uuid4().hex[:16]}.ipc"
    argv = [sys.executable, "-m", "hil.cli", "run", "--config", str(folder / CONFIG_FILE),
            "--out", str(folder), "--overwrite", "--run-id", run.run_id,
            "--endpoint", endpoint]
    began = time.monotonic()
    with (folder / LOG_FILE).open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        if started is not None:
            started(proc)
        code = proc.wait()
    wall_s = time.monotonic() - began
    Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)
    (folder / OUTCOME_FILE).write_text(json.dumps({"exit_code": code, "wall_s": wall_s}))
    report = complete_report(folder)
    problem = None if report is not None else _last_line(folder / LOG_FILE, code)
    return RunOutcome(run.index, code, wall_s, report, problem)


def _last_line(log: Path, code: int) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f"hil run exited {code}: " + (lines[-1].strip() if lines else "no output")


def run_local(todo: list[PlannedRun], jobs: int, done: Callable[[RunOutcome], None]) -> None:
    """Run `todo` on `jobs` runs at a time (each two processes). On Ctrl-C the runs not yet
    started are dropped, those running are asked to stop (SIGINT: each writes its report,
    marked interrupted) and waited for, and KeyboardInterrupt goes on up."""
    running: set[subprocess.Popen[bytes]] = set()
    lock = threading.Lock()
    stopping = threading.Event()

    def track(proc: subprocess.Popen[bytes]) -> None:
        with lock:
            running.add(proc)
            if stopping.is_set():  # started as the sweep was being stopped
                proc.send_signal(signal.SIGINT)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hil-sweep") as pool:
        futures = [pool.submit(run_one, run, track) for run in todo]
        try:
            for future in _as_they_end(futures):
                done(future.result())
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            with lock:
                stopping.set()
                for proc in running:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
            raise


def _as_they_end(futures: list[Future[RunOutcome]]) -> Iterable[Future[RunOutcome]]:
    """`futures` as they end, waiting in short slices. A stop signal sent to the process is
    run by its main thread's next bytecode; when the kernel hands it to another thread (a
    worker waiting on its `hil run`), a main thread blocked in one long wait would sit on it
    until a run ends by itself."""
    pending = set(futures)
    while pending:
        ended, pending = wait(pending, timeout=_WAIT_SLICE_S, return_when=FIRST_COMPLETED)
        yield from sorted(ended, key=futures.index)


def run_dask(todo: list[PlannedRun], scheduler: str, connect_timeout_s: float,
             done: Callable[[RunOutcome], None]) -> None:
    """Run `todo` as tasks on the Dask cluster at `scheduler` (one run per worker thread:
    start workers with `--nthreads 1`); SchedulerUnreachable when none answers in time."""
    import distributed

    # distributed has no type annotations: its objects are Any here.
    connect: Any = distributed.Client
    dask_completed: Any = distributed.as_completed
    began = time.monotonic()
    try:
        client = connect(scheduler, timeout=f"{connect_timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(
            f"no Dask scheduler answered at {scheduler} within {connect_timeout_s:g} s "
            f"(gave up after {time.monotonic() - began:.1f} s, {type(exc).__name__}); start "
            "one there (`dask scheduler`, then `dask worker ADDRESS --nthreads 1` on each "
            "machine) or check the address") from None
    try:
        futures = [client.submit(run_one, run, key=f"hil-sweep-{run.run_id}-{uuid.uuid4().hex[:8]}",
                                 pure=False, retries=1) for run in todo]
        try:
            for future in dask_completed(futures):
                done(future.result())
        except KeyboardInterrupt:
            client.cancel(futures)
            raise
    finally:
        client.close()


def default_jobs(cpus: int | None) -> int:
    """Runs at a time here: each run is two processes, mostly waiting on each other in
    lockstep, so one run per core keeps the cores busy."""
    return max(1, cpus or 1)


def outcomes_in_order(outcomes: Iterable[RunOutcome]) -> list[RunOutcome]:
    return sorted(outcomes, key=lambda outcome: outcome.index)

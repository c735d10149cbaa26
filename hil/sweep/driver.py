"""One sweep from plan to page: plan and check, skip what is done, run the rest, write.

A sweep's folder holds `sweep-spec.json` (the spec and the sweep's id, written once the
plan is checked), `runs/<config>.<law>.<experiment>.s<seed>/` (each a `hil run` folder),
and, written at the end whatever ended it (finished, Ctrl-C), `sweep.csv`, `sweep.html` and
`sweep.json` (counts, the result digest, wall time). A resumed sweep reads its spec back and
runs only the runs whose folder has no complete report.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hil.app import run_folder
from hil.sweep.plan import PlannedRun, plan_runs
from hil.sweep.progress import Progress
from hil.sweep.runner import RunOutcome, recorded_outcome, run_dask, run_local
from hil.sweep.spec import SweepSpec, SweepSpecError
from hil.sweep.table import NO_REPORT, result_digest, row_of, table_csv

SPEC_FILE = "sweep-spec.json"
SCHEMA = "hil-sweep/1"


@dataclass(frozen=True)
class Where:
    """Where the runs go: `jobs` at a time here, or the Dask scheduler at `scheduler`."""

    jobs: int
    scheduler: str | None = None
    connect_timeout_s: float = 8.0


@dataclass(frozen=True)
class Summary:
    rows: list[dict[str, Any]]
    ran: int  # runs run by this invocation (the others were done before)
    interrupted: bool
    digest: str
    wall_s: float
    out: Path


def new_sweep(spec: SweepSpec, out: Path | None) -> tuple[list[PlannedRun], str, Path]:
    """Plan a new sweep into `out` (None: runs/<sweep id>; refused if it holds a sweep) and
    save its spec; its runs, id and folder."""
    from hil.app.process import new_run_id

    sweep_id = "sweep-" + new_run_id()
    out = Path("runs") / sweep_id if out is None else out
    if (out / SPEC_FILE).exists():
        raise SweepSpecError(f"--out {out} holds a sweep already ({SPEC_FILE}); continue it "
                             f"with --resume {out}, or give a new --out")
    runs = plan_runs(spec, out / "runs", sweep_id)
    try:
        run_folder.make(str(out), "--out")
    except run_folder.RunFolderError as exc:  # empty, a file, under one, /proc, read-only
        raise SweepSpecError(str(exc)) from None
    (out / SPEC_FILE).write_text(json.dumps(
        {"schema": SCHEMA, "sweep_id": sweep_id, "spec": spec.to_json()}, indent=1))
    return runs, sweep_id, out


def resumed_sweep(out: Path) -> tuple[list[PlannedRun], str]:
    """The runs of the sweep saved in `out`, planned again (and checked again)."""
    try:
        saved = json.loads((out / SPEC_FILE).read_text())
        spec, sweep_id = SweepSpec.from_json(saved["spec"]), str(saved["sweep_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SweepSpecError(f"--resume {out}: no sweep to resume there ({SPEC_FILE}: "
                             f"{type(exc).__name__}: {exc}); give the folder of a sweep "
                             "that `hil sweep --out` started") from None
    return plan_runs(spec, out / "runs", sweep_id), sweep_id


def run_sweep(runs: list[PlannedRun], sweep_id: str, out: Path, where: Where,
              stream: TextIO) -> Summary:
    """Run what is not done yet, append each run to the history, and write the table, the
    page and sweep.json, also when interrupted (then the runs not done are NOT RUN rows)."""
    began = time.monotonic()
    outcomes: dict[int, RunOutcome] = {}
    for run in runs:
        found = recorded_outcome(run)
        if found is not None:
            outcomes[run.index] = found
            _to_history(run, found, only_if_new=True)
    todo = [run for run in runs if run.index not in outcomes]
    progress = Progress(len(runs), len(outcomes), stream)
    progress.start()

    def done(outcome: RunOutcome) -> None:
        outcomes[outcome.index] = outcome
        run = runs[outcome.index]
        _to_history(run, outcome, only_if_new=False)
        progress.run_done(run.key, str(outcome.report["verdict"]) if outcome.report
                          else f"{NO_REPORT}: {outcome.problem}")

    interrupted = False
    try:
        if where.scheduler is not None:
            run_dask(todo, where.scheduler, where.connect_timeout_s, done)
        else:
            run_local(todo, where.jobs, done)
    except KeyboardInterrupt:
        interrupted = True
        for run in todo:  # a run may have ended by itself while the others were stopped
            found = None if run.index in outcomes else recorded_outcome(run)
            if found is not None:
                outcomes[run.index] = found
                _to_history(run, found, only_if_new=True)
    finally:
        progress.finish()
    rows = [row_of(run, outcomes.get(run.index)) for run in runs]
    summary = Summary(rows, len(outcomes) - (len(runs) - len(todo)), interrupted,
                      result_digest(rows), time.monotonic() - began, out)
    write_outputs(summary, sweep_id, where)
    return summary


def _to_history(run: PlannedRun, outcome: RunOutcome, only_if_new: bool) -> None:
    """Append a finished run to its history database as `hil run` would; a failure is said
    on the run's row of nothing else: the history is not the sweep's result."""
    from hil.reporting import history

    if run.history_db is None or outcome.report is None:
        return
    try:
        if only_if_new and history.get_run(run.history_db, run.run_id) is not None:
            return
        history.append_run(run.history_db, outcome.report, run.folder)
    except (history.HistoryError, OSError) as exc:
        print(f"hil sweep: run {run.key} not added to the history: {exc}")


def write_outputs(summary: Summary, sweep_id: str, where: Where) -> None:
    from hil.sweep.page import write_page

    out, rows = summary.out, summary.rows
    (out / "sweep.csv").write_text(table_csv(rows))
    write_page(out / "sweep.html", rows, f"hil sweep {sweep_id}")
    verdicts = [row["verdict"] for row in rows]
    (out / "sweep.json").write_text(json.dumps({
        "schema": SCHEMA, "sweep_id": sweep_id, "runs": len(rows),
        "passed": verdicts.count("PASS"), "not_run": verdicts.count("NOT RUN"),
        "no_report": verdicts.count(NO_REPORT), "ran_now": summary.ran,
        "interrupted": summary.interrupted, "result_digest": summary.digest,
        "wall_s": summary.wall_s, "jobs": None if where.scheduler else where.jobs,
        "scheduler": where.scheduler}, indent=1))

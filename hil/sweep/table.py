"""The sweep's table (sweep.csv): one row per run, in the plan's order.

The columns come in two parts. The **result**: the run (config, law, experiment, seed), its
verdict, score, exit status, end reason and failed gates, and its experiment metrics
(`<state>.<metric>`, `<input>.<metric>`, docs/experiments.md) with every float written
exactly (repr); a lockstep sweep gives the same result columns wherever it runs, and
`result_digest` fingerprints them. Then the **volatile** part (`VOLATILE`): the run's wall
time, its latency figures (us), its run id and folder, which differ from run to run.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from hil.sweep.plan import PlannedRun
from hil.sweep.runner import RunOutcome

KEYS = ("config", "law", "experiment", "seed")
RESULTS = ("verdict", "score", "exit_code", "end_reason", "failed_gates")
VOLATILE = ("wall_s", "round_trip_p50_us", "round_trip_p99_us", "compute_p99_us",
            "deadline_misses", "run_id", "run_dir")
NO_REPORT = "NO REPORT"


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every experiment metric any row has, sorted."""
    known = set(KEYS) | set(RESULTS) | set(VOLATILE)
    return sorted({name for row in rows for name in row} - known)


def result_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [*KEYS, *RESULTS, *metric_names(rows)]


def row_of(run: PlannedRun, outcome: RunOutcome | None) -> dict[str, Any]:
    """The table's row for `run` (not run: outcome None)."""
    row: dict[str, Any] = {"config": run.config, "law": run.law, "experiment": run.experiment,
                           "seed": run.seed, "run_id": run.run_id, "run_dir": run.folder}
    if outcome is None or outcome.report is None:
        row.update(verdict="NOT RUN" if outcome is None else NO_REPORT,
                   exit_code=None if outcome is None else outcome.exit_code,
                   end_reason=None if outcome is None else outcome.problem)
        return row
    report = outcome.report
    latency = report.get("latency_us") or {}
    row.update(
        verdict=report.get("verdict"), score=report.get("score"), exit_code=outcome.exit_code,
        end_reason=report.get("plant_end_reason"),
        failed_gates=" ".join(g["name"] for g in report.get("gates", ()) if not g["passed"]),
        wall_s=outcome.wall_s,
        round_trip_p50_us=(latency.get("round_trip") or {}).get("p50"),
        round_trip_p99_us=(latency.get("round_trip") or {}).get("p99"),
        compute_p99_us=(report.get("law_timing") or {}).get("compute_p99_us"),
        deadline_misses=(report.get("deadline") or {}).get("misses"))
    row.update((report.get("experiment") or {}).get("metrics") or {})
    return row


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(column)) for column in columns])
    return out.getvalue()


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    """sweep.csv: the result columns, then the volatile ones."""
    return to_csv(rows, [*result_columns(rows), *VOLATILE])


def result_digest(rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the result columns as CSV: equal for equal sweeps, here or on Dask."""
    return hashlib.sha256(to_csv(rows, result_columns(rows)).encode()).hexdigest()


def read_table(text: str) -> list[dict[str, str]]:
    """sweep.csv read back, each row a mapping of column to text."""
    return list(csv.DictReader(io.StringIO(text)))

"""`hil history` (past runs, newest first) and `hil compare` (two runs side by side)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hil.app.exits import EXIT_OK, EXIT_USAGE

DEFAULT_DB = "runs/history.db"  # hil.reporting.history.DEFAULT_PATH; a test keeps them equal


def add_parser(sub: Any) -> None:
    hist = sub.add_parser("history", help="list past runs, newest first")
    hist.add_argument("--db", default=DEFAULT_DB)
    hist.add_argument("--limit", type=int, default=20)
    hist.set_defaults(handler=history_command)
    comp = sub.add_parser("compare", help="two runs' gates and latencies side by side")
    comp.add_argument("run_a", help="run folder or run id (a unique prefix will do)")
    comp.add_argument("run_b")
    comp.add_argument("--db", default=DEFAULT_DB)
    comp.set_defaults(handler=compare_command)


def history_command(args: argparse.Namespace) -> int:
    from hil.reporting import history

    try:
        runs = history.list_runs(args.db, args.limit)
    except (history.HistoryError, ValueError) as exc:
        print(f"hil history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not runs:
        where = "" if Path(args.db).exists() else (
            " (no history there yet: `hil run` writes it at record.history_db, "
            "runs/history.db by default)")
        print(f"no runs in {args.db}{where}")
        return EXIT_OK
    print(f"{'date':<21}{'run id':<24}{'plant':<10}{'controller':<16}{'mode':<10}"
          f"{'verdict':<8}{'score':>6}{'rt p50':>9}{'rt p99':>9}{'misses':>9}")
    for r in runs:
        print(f"{r['date']:<21}{r['run_id']:<24}{r['plant'] or '-':<10}"
              f"{r['controller'] or '-':<16}{r['mode'] or '-':<10}{r['verdict'] or '-':<8}"
              + "".join(f"{_num(r[k], spec):>{width}}" for k, spec, width in (
                  ("score", ".1f", 6), ("round_trip_p50_us", ".1f", 9),
                  ("round_trip_p99_us", ".1f", 9), ("miss_ratio", ".2%", 9))))
    print("(latencies in us, newest first)")
    return EXIT_OK


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _load_run(ref: str, db: str) -> dict[str, Any]:
    """A run's report from its folder, else from the history by (a prefix of) its run id."""
    from hil.reporting import history

    folder = Path(ref)
    if (folder / "report.json").exists():
        return dict(json.loads((folder / "report.json").read_text()))
    run = history.get_run(db, ref)
    if run is None:
        raise history.HistoryError(f"{ref!r} is neither a run folder with a report.json nor a "
                                   f"run id in {db}")
    return dict(run["report"])


def compare_command(args: argparse.Namespace) -> int:
    from hil.reporting import history

    try:
        a, b = _load_run(args.run_a, args.db), _load_run(args.run_b, args.db)
    except (history.HistoryError, OSError, ValueError) as exc:
        print(f"hil compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(history.format_compare(history.compare(a, b)))
    return EXIT_OK

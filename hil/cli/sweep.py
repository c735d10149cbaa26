"""`hil sweep`: laws x configs x experiments x seeds as lockstep runs, in one table and page.

Each run is a real lockstep `hil run`, here in parallel or on a Dask cluster; the table is
sweep.csv, the page sweep.html.

    hil sweep configs/sweep-dip.yaml --out runs/sweep-dip --jobs 2
    hil sweep --config configs/cartpole-step.yaml --law lqr --law "lab:Track" --seeds 3
    hil sweep --resume runs/sweep-dip                 # runs only what has no report.json

The spec (a YAML file and/or flags) is in hil/sweep/spec.py and docs/experiments.md. Exit
statuses: 0 every run PASSed, 1 some did not (or ended without a report), 2 bad input
(refused before any run starts), 3 the Dask scheduler is unreachable, 130 interrupted
(the table and page are written for what is done; continue with --resume DIR).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE

EXIT_INTERRUPTED = 130
CONNECT_TIMEOUT_S = 8.0


def add_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="run laws x configs x experiments x seeds in lockstep "
                                         "into one table and page (here or on Dask)",
                           description=__doc__.splitlines()[0])
    sweep.add_argument("spec", nargs="?", help="sweep file (YAML: configs, laws, experiments, "
                                               "seeds, perturb, duration_s, rate_hz, set)")
    sweep.add_argument("--config", action="append", default=[], metavar="FILE",
                       help="a run config (a plant); repeatable; replaces the file's configs")
    sweep.add_argument("--law", action="append", default=[], metavar="NAME",
                       help="a law with its default gains; repeatable; replaces the file's")
    sweep.add_argument("--experiment", action="append", default=[], metavar="NAME=FILE",
                       help="an experiment section from a YAML file; repeatable")
    sweep.add_argument("--seeds", help="a count (3: seeds 1, 2, 3) or a list (4,5,9)")
    sweep.add_argument("--duration", type=float, help="run.duration_s of every run")
    sweep.add_argument("--rate", type=float, help="run.rate_hz of every run")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       dest="settings", help="a config key of every run (VALUE is YAML)")
    sweep.add_argument("--out", help="the sweep's folder (default runs/sweep-<id>)")
    sweep.add_argument("--resume", metavar="DIR",
                       help="continue the sweep in DIR: rerun only the runs without a complete "
                            "report.json")
    sweep.add_argument("--jobs", type=int, help="runs at a time here (default: one per CPU)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster at ADDRESS, e.g. tcp://10.0.0.5:8786")
    sweep.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="S",
                       help="seconds to wait for the Dask scheduler (default "
                            f"{CONNECT_TIMEOUT_S:g}); then exit 3")
    sweep.set_defaults(handler=sweep_command)


def _flags(args: argparse.Namespace) -> Any:
    from hil.cli.run import parse_settings
    from hil.sweep.spec import Flags

    settings = parse_settings(args.settings)
    if args.duration is not None:
        settings["run.duration_s"] = args.duration
    if args.rate is not None:
        settings["run.rate_hz"] = args.rate
    return Flags(tuple(args.config), tuple(args.law), tuple(args.experiment), args.seeds,
                 settings)


def _plan(args: argparse.Namespace) -> tuple[list[Any], str, Path]:
    """The runs, the sweep's id and folder: a new sweep's, or the resumed one's."""
    from hil.sweep.driver import new_sweep, resumed_sweep
    from hil.sweep.spec import SweepSpecError, load_spec

    if args.resume is not None:
        given = [f for f, v in (("SPEC", args.spec), ("--config", args.config),
                                ("--law", args.law), ("--experiment", args.experiment),
                                ("--seeds", args.seeds), ("--set", args.settings),
                                ("--out", args.out), ("--duration", args.duration),
                                ("--rate", args.rate)) if v]
        if given:
            raise SweepSpecError(f"--resume takes the sweep as it was started; {given[0]} "
                                 "cannot change it: leave it out, or start a new sweep")
        out = Path(args.resume)
        runs, sweep_id = resumed_sweep(out)
        return runs, sweep_id, out
    spec = load_spec(args.spec, _flags(args))
    return new_sweep(spec, None if args.out is None else Path(args.out))


def sweep_command(args: argparse.Namespace) -> int:
    from hil.sweep.driver import Where, run_sweep
    from hil.sweep.runner import SchedulerUnreachable, default_jobs
    from hil.sweep.spec import SweepSpecError

    if args.jobs is not None and args.jobs < 1:
        print(f"hil sweep: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return EXIT_USAGE
    try:
        runs, sweep_id, out = _plan(args)
    except (SweepSpecError, ValueError) as exc:
        print(f"hil sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
    where = Where(args.jobs or default_jobs(os.cpu_count()), args.scheduler,
                  args.connect_timeout)
    print(f"hil sweep: {len(runs)} runs into {out}" + (
        f" on the Dask cluster at {args.scheduler}" if args.scheduler
        else f", {where.jobs} at a time"), file=sys.stderr)
    try:
        summary = run_sweep(runs, sweep_id, out, where, sys.stderr)
    except SchedulerUnreachable as exc:
        print(f"hil sweep: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    passed = sum(row["verdict"] == "PASS" for row in summary.rows)
    print(f"{passed}/{len(summary.rows)} runs PASS, {summary.ran} run now in "
          f"{summary.wall_s:.1f} s\ntable: {out / 'sweep.csv'}\npage:  {out / 'sweep.html'}\n"
          f"results digest: {summary.digest}")
    if summary.interrupted:
        print(f"hil sweep: interrupted; continue with hil sweep --resume {out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if passed == len(summary.rows) else EXIT_FAULT

"""`hil doctor`: check and score this bench for real time; exit 0 when ready, 1 when not.

Prints one line per check (pass / WARN / FAIL, what was found, the exact fix) and appends
the result to the run history (`record.history_db`, table `doctor`), so a lab can see a
bench degrade: `hil doctor --history` lists past results.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_USAGE


def add_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="is this bench ready for real time? (exit 0: yes)")
    doctor.add_argument("--config", help="the YAML config of the runs (default: built-in "
                        "defaults): its rate, scheduling, serial port and history database")
    doctor.add_argument("--jitter-s", type=float, default=2.0,
                        help="length of the loop-jitter measurement, s (default 2)")
    doctor.add_argument("--history-db", help="append here instead of record.history_db")
    doctor.add_argument("--no-history", action="store_true", help="do not append the result")
    doctor.add_argument("--history", action="store_true",
                        help="list past doctor results from the history instead of checking")
    doctor.add_argument("--json", help="also write the result as JSON here")
    doctor.add_argument("--only", help="comma-separated checks to run (e.g. serial_port after "
                        "plugging the rig in); default: all")
    doctor.set_defaults(handler=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    from hil.config import ConfigError, load_config
    from hil.reporting import history

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"hil doctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not 0.05 <= args.jitter_s <= 600:
        print(f"hil doctor: --jitter-s must be between 0.05 and 600, got {args.jitter_s:g}",
              file=sys.stderr)
        return EXIT_USAGE
    db = args.history_db or config.record.history_db
    if args.history:
        return _list(db)
    from hil.app.doctor import CHECK_NAMES, format_check, run_checks

    only = set(filter(None, args.only.split(","))) if args.only else None
    if only is not None and not only <= set(CHECK_NAMES):
        print(f"hil doctor: --only: unknown check(s) {', '.join(sorted(only - set(CHECK_NAMES)))}"
              f"; the checks are {', '.join(CHECK_NAMES)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"hil doctor: {config.run.rate_hz:g} Hz"
          f"{' (' + args.config + ')' if args.config else ' (built-in defaults)'}", flush=True)
    result = run_checks(config, args.config, args.jitter_s,
                        on_check=lambda c: print(format_check(c), flush=True), only=only)
    counts = {s: sum(c.status == s for c in result.checks) for s in ("pass", "warn", "fail")}
    print(f"{'READY' if result.ready else 'NOT READY'} for real time: {counts['pass']} pass, "
          f"{counts['warn']} warn, {counts['fail']} fail")
    data = result.to_dict()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(data, out, indent=2)
    if db and not args.no_history:
        try:
            history.append_doctor(db, data)
            print(f"history: {db} (table doctor; hil doctor --history)")
        except (history.HistoryError, OSError) as exc:
            print(f"hil doctor: not added to the history: {exc}", file=sys.stderr)
    return EXIT_OK if result.ready else EXIT_FAULT


def _list(db: str | None) -> int:
    from hil.reporting import history

    if not db:
        print("hil doctor: no history database (record.history_db is null; give "
              "--history-db)", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows = history.list_doctor(db, limit=200)
    except history.HistoryError as exc:
        print(f"hil doctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not rows:
        print(f"no doctor results in {db} yet: run hil doctor")
        return EXIT_OK
    print(f"{'date':<22}{'host':<14}{'check':<17}{'status':<7}detail")
    for r in rows:
        print(f"{r['date']:<22}{r['host'][:13]:<14}{r['check_name']:<17}{r['status']:<7}"
              f"{r['detail'][:90]}")
    return EXIT_OK

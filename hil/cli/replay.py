"""`hil replay`: feed a run's recorded states to a fresh controller (a process of its own) and
compare its output with the recorded controls, input by input."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from hil.app.exits import EXIT_USAGE
from hil.cli import checks


def add_parser(sub: Any) -> None:
    replay = sub.add_parser("replay", help="feed a run's recorded states to a fresh controller "
                                           "and check it reproduces the recorded controls")
    replay.add_argument("run_dir")
    replay.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest difference of an input, in its unit (default 1e-9)")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=replay_command)


def replay_command(args: argparse.Namespace) -> int:
    try:
        run = checks.run_folder(args.run_dir)
    except checks.UsageError as exc:
        checks.say("replay", exc)
        return EXIT_USAGE
    if not (run / "controller.rec").is_file():
        checks.say("replay", f"{args.run_dir} holds no controller.rec: nothing to replay (was "
                             "record.enabled false, or did its controller not start?)")
        return EXIT_USAGE
    command = [sys.executable, "-m", "controller_client.replay", args.run_dir,
               "--tolerance", str(args.tolerance), *(["--json"] if args.json else [])]
    return subprocess.run(command, check=False).returncode

"""`hil tune`: robust gain tuning of a control law (controller_client/tuning, docs/tuning.md).

The tuning itself lives in controller_client (imports only go down: hil.cli never imports
the controller side), so this command checks nothing but its own syntax and replaces itself
with `python -m controller_client.tuning` and the same options, as `hil rig-emulator` does;
Ctrl-C and the exit status then belong to the tuning process directly.

Exit statuses: 0 done and the tuned gains beat the defaults on held-out draws, 1 done but they
do not (overfit), 2 bad input (before any work), 3 the Dask scheduler is unreachable, 130
interrupted (everything so far written; continue with --resume DIR).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hil.app.exits import EXIT_FAULT

CONNECT_TIMEOUT_S = 8.0  # default of --connect-timeout: an unreachable scheduler fails in 10 s

# (flag, argparse keywords) of every option; controller_client.tuning.command parses the same.
OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--controller", {"help": "law to tune (default: the config's controller)"}),
    ("--config", {"help": "YAML run config: plant, rate, link, and its tuning section"}),
    ("--budget", {"type": int, "help": "candidate evaluations (default 200)"}),
    ("--draws", {"type": int, "help": "plant draws per candidate (default 8)"}),
    ("--uncertainty", {"type": float, "help": "+- share on masses, lengths and inertias, "
                                              "twice that on friction (default 0.05)"}),
    ("--seed", {"type": int, "help": "seed of the draws and the optimiser (default 0)"}),
    ("--optimizer", {"choices": ("pso", "cma", "de"), "help": "default pso"}),
    ("--workers", {"type": int, "help": "threads here (default 1), or Dask worker processes "
                                        "with --local-cluster"}),
    ("--scheduler", {"help": "Dask scheduler address, e.g. tcp://10.0.0.5:8786"}),
    ("--connect-timeout", {"type": float, "metavar": "S",
                           "help": "seconds to wait for the Dask scheduler to answer before "
                                   f"exiting 3 (default {CONNECT_TIMEOUT_S:g})"}),
    ("--local-cluster", {"action": "store_true",
                         "help": "run --workers Dask worker processes on this machine"}),
    ("--bounds", {"action": "append", "metavar": "GAIN=LOW,HIGH",
                  "help": "search GAIN within [LOW, HIGH] (repeat for several gains; over "
                          "tuning.bounds and the default box around each default gain)"}),
    ("--out", {"help": "output folder (default runs/tune-<id>)"}),
    ("--resume", {"metavar": "DIR", "help": "continue the tuning in DIR"}),
    ("--db", {"help": "run history database (default: the config's record.history_db)"}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kwargs in OPTIONS:
        parser.add_argument(flag, **kwargs)


def add_parser(sub: Any) -> None:
    tune = sub.add_parser("tune", help="tune a control law's gains for robustness (nevergrad, "
                                       "Dask)", description=__doc__.splitlines()[0])
    add_arguments(tune)
    tune.set_defaults(handler=tune_command)


def to_argv(args: argparse.Namespace) -> list[str]:
    """The options of `args` as a command line again."""
    argv: list[str] = []
    for flag, kwargs in OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if kwargs.get("action") == "store_true":
            argv += [flag] if value else []
        elif kwargs.get("action") == "append":
            argv += [f"{flag}={v}" for v in value or ()]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def tune_command(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "controller_client.tuning", *to_argv(args)]
    os.execv(sys.executable, command)
    return EXIT_FAULT  # not reached: execv replaces this process

"""`hil`: the command-line front end. `hil run` starts a plant and a controller and reports.

One module per command (hil/cli/<command>.py), each with `add_parser(subparsers)` and a
handler. This package imports only the standard library: a command's heavy imports (numpy,
matplotlib, zmq) happen inside its handler, so `hil estop` starts fast.

`hil run` starts `hil-plant` and `hil-controller` as separate processes by their entry
points (never by import), waits for both, merges their JSON into `report.json`, prints a
summary, writes `report.html` with its plots, appends the run to the history database, and
exits 0 on PASS, 1 on FAIL, 2 on bad usage or config.

The other commands work on finished runs: `hil report` (re)writes a run's HTML report,
`hil export` writes its plant recording as CSV or NPZ, `hil replay` feeds its recorded
states to a fresh controller (`python -m controller_client.replay`, started as a process),
`hil history` lists past runs and `hil compare` puts two runs side by side.
`hil estop`, `hil clear`, `hil gains` and `hil push` talk to a running plant
(hil/link/operator.py).
`hil new controller|plant NAME` writes a starting law or plant model and its config.
`hil doctor` checks whether this bench is ready for real time (hil/app/doctor.py).
`hil sweep` runs laws x configs x experiments x seeds as lockstep `hil run`s, here or on
Dask, into one table and page (hil/sweep).
`hil rig-emulator` runs an emulated rig on a pseudo-terminal (`python -m
plant_server.rig_emulator`); with `rig_emulator.enabled`, `hil run` starts it before the
plant, points `serial.port` at it, stops it after the run and adds its `rig.json`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import NoReturn

from hil.app.early_signals import START_UP_GC_THRESHOLDS
from hil.app.exits import EXIT_OK, EXIT_USAGE, leave
from hil.cli import (
    checks,
    doctor,
    gains,
    history,
    keygen,
    new,
    operator,
    push,
    replay,
    report,
    rig_emulator,
    run,
    sweep,
    tune,
    watch,
)

# The order `hil --help` lists them in.
COMMANDS = (run, watch, report, rig_emulator, replay, history, operator, gains, push, new,
            keygen, doctor, tune, sweep)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line on stderr (exit 2), not a usage
    block: a person reads the line that says what is wrong, and --help has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {checks.one_line(message)} "
                              f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hil", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["rig-emulator"]:  # all that follows is the emulator's, options included
        return rig_emulator.exec_emulator(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # `hil history | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again, and end quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def entry() -> None:
    """The `hil` program: main(), collecting garbage rarely (as hil-plant and hil-controller
    start: hil/app/early_signals.py), then leave without the final collections."""
    gc.set_threshold(*START_UP_GC_THRESHOLDS)
    leave(main())

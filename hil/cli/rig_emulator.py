"""`hil rig-emulator ...`: the emulated rig on a pseudo-terminal (its own options follow)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hil.app.exits import EXIT_FAULT


def add_parser(sub: Any) -> None:
    rig = sub.add_parser("rig-emulator", add_help=False,
                         help="an emulated rig on a pseudo-terminal (its options: "
                              "hil rig-emulator --help)")
    rig.add_argument("args", nargs=argparse.REMAINDER)
    rig.set_defaults(handler=lambda a: exec_emulator(a.args))


def exec_emulator(args: list[str]) -> int:
    command = [sys.executable, "-m", "plant_server.rig_emulator", *args]
    os.execv(sys.executable, command)
    return EXIT_FAULT  # not reached: execv replaces this process

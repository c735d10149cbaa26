"""`hil estop` and `hil clear`: the operator's commands to a running plant.

These are what a person types when something goes wrong, so they import only the link
(zmq, msgpack): no numpy, no numba, no matplotlib, no pydantic. Exit 0 when the plant
acknowledged (`hil clear`: and cleared, or had nothing to clear), 1 when it could not clear,
2 for unusable --keys, 3 when no plant answered, 4 when the plant's CURVE security refused
this client (no --keys, or a key it does not trust), at once and saying which.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE

T = TypeVar("T")


def add_parser(sub: Any) -> None:
    for name, text in (("estop", "put a running plant in its safe state and end its run"),
                       ("clear", "clear a running plant's latched safe state")):
        op = sub.add_parser(name, help=text)
        op.add_argument("--endpoint", required=True, help="the plant's ZeroMQ endpoint")
        op.add_argument("--timeout", type=float, default=2.0, help="s to wait for the answer")
        op.add_argument("--keys", help="CURVE keys dir, for a plant with security.curve on")
        if name == "estop":
            op.add_argument("--reason", default="hil estop", help="recorded in the report")
        op.set_defaults(handler=estop_command if name == "estop" else clear_command)


def ask_plant(command: str, call: Callable[[], T]) -> tuple[T | None, int | None]:
    """`call()`'s answer, or the exit status for why the plant gave none (printed)."""
    from hil.link import operator, security

    try:
        return call(), None
    except security.CurveKeyError as exc:
        print(f"hil {command}: --keys: {exc}", file=sys.stderr)
        return None, EXIT_USAGE
    except operator.Refused as exc:  # CURVE on and no --keys, or a key it does not trust
        print(f"hil {command}: {exc}", file=sys.stderr)
        return None, EXIT_REFUSED
    except operator.NoAnswer as exc:
        print(f"hil {command}: {exc}", file=sys.stderr)
        return None, EXIT_UNREACHABLE


def estop_command(args: argparse.Namespace) -> int:
    from hil.link import operator

    answer, code = ask_plant("estop", lambda: operator.estop(
        args.endpoint, args.reason, args.timeout, args.keys))
    if code is not None:
        return code
    print(f"e-stop: {answer}")
    return EXIT_OK


def clear_command(args: argparse.Namespace) -> int:
    from hil.link import operator

    answer, code = ask_plant("clear", lambda: operator.clear(
        args.endpoint, args.timeout, args.keys))
    if code is not None:
        return code
    print(f"clear: {answer}")
    return EXIT_OK if answer.startswith(("cleared", "nothing")) else EXIT_FAULT

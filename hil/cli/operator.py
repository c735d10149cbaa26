"""`hil estop` and `hil clear`: the operator's commands to a running plant.

These are what a person types when something goes wrong, so they import only the link
(zmq, msgpack): no numpy, no numba, no matplotlib, no pydantic. Exit 0 when the plant
acknowledged (`hil clear`: and cleared, or had nothing to clear), 1 when it could not clear,
2 for bad usage (an endpoint, timeout or keys folder it cannot use, hil/cli/checks.py: said in
one line, nothing sent; but `hil estop` sends its e-stop first when only --timeout or --reason
is wrong, then exits 2), 3 when no plant answered, 4 when the plant's CURVE security refused
this client (no --keys, or a key it does not trust), at once and saying which.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from hil.cli import checks

T = TypeVar("T")


def add_link_options(op: argparse.ArgumentParser) -> None:
    """--endpoint, --timeout and --keys: how an operator command reaches the plant."""
    op.add_argument("--endpoint", required=True,
                    help=f"the plant's ZeroMQ endpoint: {checks.ENDPOINT_FORMS}")
    op.add_argument("--timeout", default=str(checks.DEFAULT_TIMEOUT_S), metavar="S",
                    help=f"s to wait for the answer, 0 < S <= {checks.MAX_TIMEOUT_S:g} "
                         f"({checks.DEFAULT_TIMEOUT_S:g})")
    op.add_argument("--keys", help="CURVE keys dir, for a plant with security.curve on")


def add_parser(sub: Any) -> None:
    for name, text in (("estop", "put a running plant in its safe state and end its run"),
                       ("clear", "clear a running plant's latched safe state")):
        op = sub.add_parser(name, help=text)
        add_link_options(op)
        if name == "estop":
            op.add_argument("--reason", default="hil estop", help="recorded in the report")
        op.set_defaults(handler=estop_command if name == "estop" else clear_command)


def link_options(command: str, args: argparse.Namespace) -> tuple[str, float, str | None] | int:
    """(endpoint, timeout_s, keys_dir) from `args`, checked; or EXIT_USAGE, said in one line."""
    try:
        return (checks.endpoint(args.endpoint), checks.timeout_s(args.timeout),
                checks.keys_dir(args.keys))
    except checks.UsageError as exc:
        checks.say(command, exc)
        return EXIT_USAGE


def ask_plant(command: str, call: Callable[[], T]) -> tuple[T | None, int | None]:
    """`call()`'s answer, or the exit status for why the plant gave none (printed)."""
    from hil.link import operator, security

    try:
        return call(), None
    except security.CurveKeyError as exc:
        checks.say(command, f"--keys: {exc}")
        return None, EXIT_USAGE
    except operator.BadRequest as exc:  # nothing was sent
        checks.say(command, exc)
        return None, EXIT_USAGE
    except operator.Refused as exc:  # CURVE on and no --keys, or a key it does not trust
        checks.say(command, exc)
        return None, EXIT_REFUSED
    except operator.NoAnswer as exc:
        checks.say(command, exc)
        return None, EXIT_UNREACHABLE


def estop_command(args: argparse.Namespace) -> int:
    """Send the e-stop first, complain second: a bad --timeout or an over-long --reason must
    not leave the plant running in an emergency. Only what makes sending impossible (the
    endpoint, the keys) stops it from going."""
    from hil.link import operator

    try:
        endpoint, keys_dir = checks.endpoint(args.endpoint), checks.keys_dir(args.keys)
    except checks.UsageError as exc:
        checks.say("estop", exc)
        return EXIT_USAGE
    complaints = []
    try:
        timeout_s = checks.timeout_s(args.timeout)
    except checks.UsageError as exc:
        timeout_s = checks.DEFAULT_TIMEOUT_S
        complaints.append(f"{exc}; the e-stop was sent all the same, with a "
                          f"{timeout_s:g} s wait")
    reason, cut = checks.reason(args.reason)
    if cut is not None:
        complaints.append(cut)
    answer, code = ask_plant("estop", lambda: operator.estop(endpoint, reason, timeout_s,
                                                             keys_dir))
    if code == EXIT_USAGE:  # the keys or the endpoint: nothing was sent, and that is said
        return code
    if answer is not None:
        print(f"e-stop: {answer}")
    if complaints:
        checks.say("estop", "; ".join(complaints))
        return EXIT_USAGE
    return code if code is not None else EXIT_OK


def clear_command(args: argparse.Namespace) -> int:
    from hil.link import operator

    link = link_options("clear", args)
    if isinstance(link, int):
        return link
    endpoint, timeout_s, keys_dir = link
    answer, code = ask_plant("clear", lambda: operator.clear(endpoint, timeout_s, keys_dir))
    if answer is None:
        return code if code is not None else EXIT_FAULT
    print(f"clear: {answer}")
    return EXIT_OK if answer.startswith(("cleared", "nothing")) else EXIT_FAULT

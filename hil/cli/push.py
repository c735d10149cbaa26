"""`hil push`: push a running simulated plant, as a hand on the cart would.

`hil push --endpoint E force=5 --for 50ms` asks the plant to add 5 (in the input's unit) to
its input `force` for 50 ms from now (plant_server/push.py). The plant refuses a push beyond
the input's limits (naming them), on a latched plant, in lockstep and on a rig; exit 1 with
its reason. Exit 0 when it pushed, 2 for bad usage (nothing sent), 3 when no plant answered,
4 when its CURVE security refused this client. Imports only the link.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.cli import checks
from hil.cli.operator import add_link_options, ask_plant, link_options

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(ms|s)\s*$", re.IGNORECASE)


def add_parser(sub: Any) -> None:
    op = sub.add_parser("push", help="add a value to a running simulated plant's input for "
                                     "a while (realtime runs)")
    op.add_argument("push", metavar="INPUT=VALUE",
                    help="the input and what to add to it, in its unit (e.g. force=5)")
    op.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                    help="how long: 50ms, 0.2s (at most 10 s)")
    add_link_options(op)
    op.set_defaults(handler=push_command)


def parse_push(word: str) -> tuple[str, float]:
    """(input, value) from `force=5`; ValueError saying why not."""
    name, sep, text = word.partition("=")
    if not sep or not name:
        raise ValueError(f"{word!a}: give INPUT=VALUE, e.g. force=5")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text!a} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is {text!a}: a push is a finite number")
    return name, value


def parse_duration_ms(text: str) -> float:
    """Milliseconds from `50ms` or `0.2s`; ValueError saying why not."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"--for {text!a}: give a duration with its unit, e.g. 50ms or 0.2s")
    value = float(match.group(1)) * (1.0 if match.group(2).lower() == "ms" else 1e3)
    if not 0.0 < value <= 10_000.0:
        raise ValueError(f"--for {text!a}: a push lasts more than 0 and at most 10 s")
    return value


def push_command(args: argparse.Namespace) -> int:
    from hil.link import operator

    link = link_options("push", args)
    if isinstance(link, int):
        return link
    endpoint, timeout_s, keys_dir = link
    try:
        name, value = parse_push(args.push)
        duration_ms = parse_duration_ms(args.duration)
    except ValueError as exc:
        checks.say("push", exc)
        return EXIT_USAGE
    answer, code = ask_plant("push", lambda: operator.push(endpoint, name, value, duration_ms,
                                                           timeout_s, keys_dir))
    if answer is None:
        return code if code is not None else EXIT_FAULT
    print(f"push: {answer}")
    return EXIT_OK if answer.startswith("pushed") else EXIT_FAULT

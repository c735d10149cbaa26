"""`hil gains`: print or set the running control law's gains.

`hil gains --endpoint E` prints the gain names and values; `hil gains --endpoint E 1 2 3`
sets them all in order, `hil gains --endpoint E k1=3 K=25` some by name. The plant relays the
request to its controller; the law validates the gains (a refusal: exit 1 with the reason,
the run goes on) and they apply between two controls. A plant with CURVE on refuses it
without --keys (or with a key it does not trust): exit 4 saying so. Imports only the link.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.cli import checks
from hil.cli.operator import add_link_options, ask_plant, link_options


def add_parser(sub: Any) -> None:
    op = sub.add_parser("gains", help="print or set a running control law's gains")
    op.add_argument("values", nargs="*", metavar="VALUE|NAME=VALUE",
                    help="new gains: all in order, or some by name (none: print them)")
    add_link_options(op)
    op.set_defaults(handler=gains_command)


def parse_values(words: list[str]) -> tuple[list[str], list[float]]:
    """(names, values) from `1 2 3` (names empty) or `k1=3 K=25`; ValueError saying why."""
    named = ["=" in w for w in words]
    if any(named) and not all(named):
        raise ValueError("give all gains in order (1 2 3) or some by name (k1=3 K=25), not both")
    names: list[str] = []
    values: list[float] = []
    for position, word in enumerate(words, start=1):
        name, _, text = word.rpartition("=")
        gain = f"gain {name!a}" if any(named) else f"gain #{position}"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{gain}: {text!a} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{gain} is {text!a}: gains are finite numbers")
        if any(named):
            if not name:
                raise ValueError(f"{word!a}: no gain name before '='")
            names.append(name)
        values.append(value)
    return names, values


def gains_command(args: argparse.Namespace) -> int:
    from hil.link import operator

    link = link_options("gains", args)
    if isinstance(link, int):
        return link
    endpoint, timeout_s, keys_dir = link
    try:
        names, values = parse_values(args.values)
    except ValueError as exc:
        checks.say("gains", exc)
        return EXIT_USAGE
    # A request over the protocol's bounds is refused here (exit 2), not sent.
    answer, code = ask_plant("gains", lambda: operator.gains(
        endpoint, names, values, timeout_s, keys_dir))
    if code is not None or answer is None:
        return code if code is not None else EXIT_FAULT
    if not answer.ok:
        print(f"hil gains: refused: {answer.detail}; the gains stay "
              f"{_pairs(answer.names, answer.values)}", file=sys.stderr)
        return EXIT_FAULT
    if values:
        print(f"gains: {_pairs(answer.names, answer.old)} -> "
              f"{_pairs(answer.names, answer.values)} ({answer.detail})")
    else:
        print(f"gains: {_pairs(answer.names, answer.values)}")
    return EXIT_OK


def _pairs(names: list[str], values: list[float]) -> str:
    if len(names) != len(values):
        names = [f"#{i}" for i in range(len(values))]
    return " ".join(f"{n}={v:g}" for n, v in zip(names, values, strict=True))

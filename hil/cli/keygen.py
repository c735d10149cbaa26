"""`hil keygen`: CURVE keys for the plant and its clients."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hil.app.exits import EXIT_OK, EXIT_USAGE


def add_parser(sub: Any) -> None:
    keygen = sub.add_parser("keygen", help="make CURVE keys for the plant and its clients")
    keygen.add_argument("dir", help="where to write them (security.keys_dir)")
    keygen.set_defaults(handler=keygen_command)


def keygen_command(args: argparse.Namespace) -> int:
    from hil.link import security

    try:
        made = security.generate(args.dir)
    except security.CurveKeyError as exc:
        print(f"hil keygen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in made:
        print(path)
    print(f"set security.curve: true and security.keys_dir: {args.dir}; copy plant.key and "
          "the controller's pair to a controller on another machine")
    return EXIT_OK

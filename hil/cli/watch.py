"""`hil watch`: a live view of a run in the browser (hil/reporting/liveview), read-only.

`hil watch --run DIR` follows a run folder while its plant writes it (`hil run --out DIR`,
or `hil-plant --out DIR` started by hand): the page is fed from the plant's recording and the
processes' logs, so the loops pay nothing for it. `hil run --watch` does the same for the run
it starts. The page is on http://127.0.0.1:8700/ unless `--port`/`--host` say otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.app.exits import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from hil.reporting.liveview.server import LiveViewServer


def add_parser(sub: Any) -> None:
    watch = sub.add_parser("watch", help="a live view of a run in the browser (read-only)")
    watch.add_argument("--run", required=True, metavar="DIR",
                       help="the run folder to follow (its plant.rec and logs)")
    watch.add_argument("--port", type=int, default=8700, help="page port (8700)")
    watch.add_argument("--host", default="127.0.0.1",
                       help="page address (loopback; 0.0.0.0 shows it to the network)")
    watch.set_defaults(handler=watch_command)


def start_run_view(who: str, run_dir: Path, recording: bool, host: str, port: int
                   ) -> LiveViewServer | int:
    """The live view of the run folder `run_dir`, serving; or an exit status, said on stderr."""
    if not recording:
        print(f"{who}: the live view reads the plant's recording, and record.enabled is "
              "false; turn it on in the config", file=sys.stderr)
        return EXIT_USAGE
    from hil.reporting.liveview.feed import RecordingFeed
    from hil.reporting.liveview.server import LiveViewServer

    try:
        server = LiveViewServer(RecordingFeed(run_dir).poll, host, port).start()
    except OSError as exc:
        print(f"{who}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"live view: {server.url}", flush=True)
    return server


def watch_command(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        print(f"hil watch: no run folder {run_dir} (give the --out of the run)", file=sys.stderr)
        return EXIT_USAGE
    server = start_run_view("hil watch", run_dir, True, args.host, args.port)
    if isinstance(server, int):
        return server
    done = threading.Event()
    old = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        server.stop()
    stats = server.statistics()
    print(f"hil watch: {stats.clients_accepted} pages served, {stats.clients_refused} refused, "
          f"{stats.client_messages_ignored} client messages ignored")
    return EXIT_OK

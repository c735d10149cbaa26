"""`hil watch`: a live view of a run in the browser (hil/reporting/liveview), read-only.

`hil watch --run DIR` follows a run folder while its plant writes it (`hil run --out DIR`,
or `hil-plant --out DIR` started by hand): the page is fed from the plant's recording and the
processes' logs, so the loops pay nothing for it. `hil run --watch` does the same for the run
it starts. `hil watch --endpoint EP [--keys DIR]` observes a plant already running, maybe on
another machine: the plant sends it ~40 copies a second of its state (hil/link/observer.py),
never waiting for it. The page is on http://127.0.0.1:8700/ unless `--port`/`--host` say
otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.app.exits import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from hil.cli import checks

if TYPE_CHECKING:
    from hil.reporting.liveview.endpoint import EndpointFeed
    from hil.reporting.liveview.server import LiveViewServer


def add_parser(sub: Any) -> None:
    watch = sub.add_parser("watch", help="a live view of a run in the browser (read-only)")
    source = watch.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR",
                        help="the run folder to follow (its plant.rec and logs)")
    source.add_argument("--endpoint", metavar="EP",
                        help="observe the plant running at EP (tcp://HOST:PORT or ipc://PATH), "
                             "read-only")
    watch.add_argument("--keys", metavar="DIR",
                       help="with --endpoint: CURVE keys (hil keygen) for a plant with "
                            "security.curve on")
    watch.add_argument("--timeout", default=str(checks.DEFAULT_TIMEOUT_S), metavar="S",
                       help="with --endpoint: seconds to wait for the plant's answer, "
                            f"0 < S <= {checks.MAX_TIMEOUT_S:g} ({checks.DEFAULT_TIMEOUT_S:g})")
    watch.add_argument("--port", type=int, default=8700, help="page port (8700)")
    watch.add_argument("--host", default="127.0.0.1",
                       help="page address (loopback; 0.0.0.0 shows it to the network)")
    watch.set_defaults(handler=watch_command)


# The flags that set the page's address: `hil run`'s, and `hil watch`'s own.
RUN_FLAGS = ("--watch-host", "--watch-port")
WATCH_FLAGS = ("--host", "--port")


def start_run_view(who: str, run_dir: Path, recording: bool, host: str, port: int,
                   flags: tuple[str, str] = RUN_FLAGS) -> LiveViewServer | int:
    """The live view of the run folder `run_dir`, serving; or an exit status, said on stderr."""
    view = bind_run_view(who, run_dir, recording, host, port, flags)
    return view if isinstance(view, int) else serve_view(who, view)


def bind_run_view(who: str, run_dir: Path, recording: bool, host: str, port: int,
                  flags: tuple[str, str] = RUN_FLAGS) -> LiveViewServer | int:
    """The live view of the run folder `run_dir` with its address taken, not served yet
    (`serve_view`: the process may still fork first); or an exit status, said on stderr
    with the fix in `flags` (the command's host and port flags)."""
    if not recording:
        print(f"{who}: the live view reads the plant's recording, and record.enabled is "
              "false; turn it on in the config", file=sys.stderr)
        return EXIT_USAGE
    from hil.reporting.liveview.feed import RecordingFeed
    from hil.reporting.liveview.server import LiveViewServer

    try:
        return LiveViewServer(RecordingFeed(run_dir).poll, host, port).bind()
    except OSError as exc:
        return say_refused(who, exc, flags)


def say_refused(who: str, exc: OSError, flags: tuple[str, str]) -> int:
    """A page address the live view cannot serve, said with the fix in the command's own
    `flags` (host, port); EXIT_USAGE."""
    part, (host_flag, port_flag) = str(getattr(exc, "part", "")), flags
    fix = {"port": f"; choose another port with {port_flag}",
           "host": f"; give {host_flag} a name or an address of this machine (127.0.0.1; "
                   "0.0.0.0 for every network)"}.get(part, "")
    print(f"{who}: {exc.strerror or exc}{fix}", file=sys.stderr)
    return EXIT_USAGE


def serve_view(who: str, server: LiveViewServer) -> LiveViewServer | int:
    """Serve a bound live view and say its address; or an exit status, said on stderr."""
    try:
        server.serve()
    except OSError as exc:
        server.stop()
        print(f"{who}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"live view: {server.url}", flush=True)
    return server


def start_endpoint_view(args: argparse.Namespace) -> tuple[LiveViewServer, EndpointFeed] | int:
    """The live view of the plant at `args.endpoint`, serving; or an exit status, said."""
    from hil.link import security
    from hil.link.observer import BadRequest, NoAnswer, Observer, Refused
    from hil.reporting.liveview.endpoint import EndpointFeed
    from hil.reporting.liveview.server import LiveViewServer

    try:
        endpoint, timeout_s = checks.endpoint(args.endpoint), checks.timeout_s(args.timeout)
        observer = Observer(endpoint, checks.keys_dir(args.keys))
    except (checks.UsageError, BadRequest) as exc:
        checks.say("watch", exc)
        return EXIT_USAGE
    except security.CurveKeyError as exc:
        checks.say("watch", f"--keys: {exc}")
        return EXIT_USAGE
    try:
        first = observer.subscribe(timeout_s)
    except Refused as exc:  # CURVE on and no --keys, a key it does not trust, or full
        observer.close()
        checks.say("watch", exc)
        return EXIT_REFUSED
    except NoAnswer as exc:
        observer.close()
        checks.say("watch", exc)
        return EXIT_UNREACHABLE
    feed = EndpointFeed(observer, first)
    try:
        server = LiveViewServer(feed.poll, args.host, args.port).start()
    except OSError as exc:
        observer.close()
        return say_refused("hil watch", exc, WATCH_FLAGS)
    print(f"observing {args.endpoint} (run {first['run_id'] or '?'})", flush=True)
    print(f"live view: {server.url}", flush=True)
    return server, feed


def watch_command(args: argparse.Namespace) -> int:
    feed: EndpointFeed | None = None
    try:
        checks.port("--port", args.port)
    except checks.UsageError as exc:
        checks.say("watch", exc)
        return EXIT_USAGE
    if args.endpoint is not None:
        started = start_endpoint_view(args)
        if isinstance(started, int):
            return started
        server, feed = started
    else:
        if args.keys is not None:
            print("hil watch: --keys goes with --endpoint (a run folder needs no keys)",
                  file=sys.stderr)
            return EXIT_USAGE
        try:  # its recording may not be there yet: the run may be starting
            run_dir = checks.run_folder(args.run, needs=None)
        except checks.UsageError as exc:
            checks.say("watch", exc)
            return EXIT_USAGE
        run_view = start_run_view("hil watch", run_dir, True, args.host, args.port,
                                  WATCH_FLAGS)
        if isinstance(run_view, int):
            return run_view
        server = run_view
    done = threading.Event()
    old = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        server.stop()
        if feed is not None:
            feed.observer.close()
    stats = server.statistics()
    print(f"hil watch: {stats.clients_accepted} pages served, {stats.clients_refused} refused, "
          f"{stats.client_messages_ignored} client messages ignored")
    if feed is not None:
        print(f"hil watch: {feed.observations} observations received, {feed.dropped} dropped "
              f"by the plant (this observer's queue was full)")
    return EXIT_OK

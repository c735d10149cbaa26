"""`LiveViewServer`: the live page and its WebSocket feed, on a thread of its own.

`start()` binds first, in the caller's thread, so a port in use is an `OSError` naming the
address before anything else starts (`hil run --watch` refuses to start the run). Then one
asyncio loop, on a daemon thread, serves:

- `GET /` and the files of `static/` (no build step; nothing fetched from the network);
- `GET /ws`: the WebSocket. On connect a page gets the feed's `hello`; then every
  1/`update_hz` s the thread polls the feed and sends each page its `update` as JSON text.

Bounded everywhere, and counted in `statistics()`: at most `max_clients` pages (the rest get
HTTP 503 at the handshake); the feed is read-only, so what a page sends is read and thrown
away, at most `max_message_bytes` a message (larger closes the connection) and at most
`max_messages_per_client` messages (then the connection is closed); a page whose outgoing
buffer is over `max_buffer_bytes` (slow, or gone without closing) skips updates until it
drains. None of it reaches the plant or the controller: they are other processes and this
only reads what they have already written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import mimetypes
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LiveViewServer", "LiveViewStatistics",
           "static_text"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
CLOSE_TIMEOUT_S = 1.0  # stop(): how long a client that does not close its side is waited for
_STATIC = ("index.html", "live.js", "plant.js", "style.css")


def static_text(name: str) -> str:
    """One of the page's files, as shipped in the package."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class LiveViewStatistics:
    clients_now: int
    clients_accepted: int
    clients_refused: int  # over max_clients: HTTP 503
    client_messages_ignored: int  # the feed is read-only
    clients_closed_for_junk: int  # too many or too large messages
    updates_sent: int
    updates_skipped_slow: int  # a page's buffer was full
    http_requests: int
    http_not_found: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AddressRefused(OSError):
    """The live view cannot serve `host`:`port`. `part` says which to change: "port" (in use,
    or below 1024 without the privilege) or "host" (not a name or an address of this
    machine)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot serve the live view on {host}:{port}: {reason}")
        self.part = "port" if cause.errno in (errno.EADDRINUSE, errno.EACCES) else "host"


class LiveViewServer:
    """Serve the live view of `poll_feed` on http://`host`:`port`/ (see module doc).

    `poll_feed(final)` returns a list of snapshots (dicts); one with `"type": "hello"` is
    kept and sent to every page that connects. It is called on the server's thread only,
    with `final` True once, at the end, for all that is left.
    """

    def __init__(self, poll_feed: Callable[[bool], list[dict[str, Any]]], host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, *, update_hz: float = 40.0, max_clients: int = 16,
                 max_message_bytes: int = 1024, max_messages_per_client: int = 64,
                 max_buffer_bytes: int = 256 * 1024) -> None:
        if not 1 <= update_hz <= 60:
            raise ValueError(f"update_hz must be within 1..60 (a screen's rate), got {update_hz}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.poll_feed = poll_feed
        self.host, self.port = host, port
        self.update_hz = update_hz
        self.max_clients = max_clients
        self.max_message_bytes = max_message_bytes
        self.max_messages_per_client = max_messages_per_client
        self.max_buffer_bytes = max_buffer_bytes
        self._files = {name: static_text(name).encode() for name in _STATIC}
        self._clients: set[ServerConnection] = set()
        self._hello: str | None = None
        self._counts = dict.fromkeys(
            ("clients_accepted", "clients_refused", "client_messages_ignored",
             "clients_closed_for_junk", "updates_sent", "updates_skipped_slow",
             "http_requests", "http_not_found"), 0)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> LiveViewServer:
        """Bind (OSError naming the address if it is taken), then serve on a thread."""
        return self.bind().serve()

    def bind(self) -> LiveViewServer:
        """Take the address, without a thread yet (OSError naming it if it is taken): a
        process may then still fork (`hil run` forks its programs) before `serve`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise AddressRefused(self.host, self.port, exc) from None
        self.port = sock.getsockname()[1]  # port 0: the one the OS chose
        self._sock = sock
        return self

    @property
    def fileno(self) -> int:
        """The bound socket's descriptor (-1 before `bind`): a forked child closes its copy."""
        return -1 if self._sock is None else self._sock.fileno()

    def serve(self) -> LiveViewServer:
        """Serve the bound address on a thread; OSError if the server did not start."""
        assert self._sock is not None, "bind() first"
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise OSError(f"the live view did not start: {self._error}")
        return self

    def stop(self) -> None:
        """Send the feed's last snapshots, close every page and stop the thread."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10.0)
        if self._sock is not None:
            self._sock.close()

    def statistics(self) -> LiveViewStatistics:
        return LiveViewStatistics(clients_now=len(self._clients), **self._counts)

    # ----------------------------------------------------------------- the thread
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or stop(), never silent
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server: Server
        async with serve(self._handler, sock=self._sock, process_request=self._http,
                         max_size=self.max_message_bytes, max_queue=4,
                         write_limit=self.max_buffer_bytes, compression=None,
                         ping_interval=5, ping_timeout=10,
                         # A page or HTTP client that never closes its side holds stop()
                         # at most this long (the default, 10 s, held every `hil run --watch`
                         # whose browser kept a connection open).
                         close_timeout=CLOSE_TIMEOUT_S) as server:
            self._ready.set()
            period = 1.0 / self.update_hz
            loop = asyncio.get_running_loop()
            deadline = loop.time()
            while not self._stop.is_set():
                self._pump(False)
                # Absolute deadlines: the rate holds whatever a pump costs (skip, never burst).
                deadline = max(deadline + period, loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), deadline - loop.time())
            self._pump(True)  # the final state
            for ws in list(self._clients):
                await ws.close(1001, "the run is over")
            server.close()

    def _pump(self, final: bool) -> None:
        for snapshot in self.poll_feed(final):
            text = json.dumps(snapshot, separators=(",", ":"))
            if snapshot.get("type") == "hello":
                self._hello = text
            self._broadcast(text)

    def _broadcast(self, text: str) -> None:
        ready = []
        for ws in self._clients:
            transport = ws.transport
            if transport is None or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > self.max_buffer_bytes:
                self._counts["updates_skipped_slow"] += 1
                continue
            ready.append(ws)
        # broadcast() writes without waiting; the buffers it fills were checked just above.
        broadcast(ready, text, raise_exceptions=False)
        self._counts["updates_sent"] += len(ready)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        self._counts["http_requests"] += 1
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if len(self._clients) >= self.max_clients:
                self._counts["clients_refused"] += 1
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                          f"live view full: {self.max_clients} pages open\n")
            return None  # go on with the WebSocket handshake
        name = "index.html" if path == "/" else path.lstrip("/")
        body = self._files.get(name)
        if body is None:
            self._counts["http_not_found"] += 1
            return connection.respond(HTTPStatus.NOT_FOUND, f"no {path} here\n")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(200, "OK", Headers([
            ("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]), body)

    async def _handler(self, ws: ServerConnection) -> None:
        if len(self._clients) >= self.max_clients:  # raced past the handshake check
            self._counts["clients_refused"] += 1
            await ws.close(1013, "live view full")
            return
        self._clients.add(ws)
        self._counts["clients_accepted"] += 1
        try:
            if self._hello is not None:
                await ws.send(self._hello)
            received = 0
            async for _ in ws:
                received += 1
                self._counts["client_messages_ignored"] += 1
                if received >= self.max_messages_per_client:
                    self._counts["clients_closed_for_junk"] += 1
                    await ws.close(1008, "this feed is read-only")
                    break
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:  # over max_message_bytes
                self._counts["clients_closed_for_junk"] += 1
        finally:
            self._clients.discard(ws)

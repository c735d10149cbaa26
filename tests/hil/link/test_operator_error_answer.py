"""An operator command the plant answers with `error` (a plant of another protocol version
that does not know the request) ends at once naming the error, exit 4, instead of waiting out
its timeout and asking whether hil-plant runs there."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import zmq
from conftest import free_endpoint

from hil.link import messages as msg

BIN = Path(sys.executable).parent


def answer_with_error(endpoint: str, stop: threading.Event) -> list[str]:
    """A ROUTER at `endpoint` answering every message with error(unknown_kind, ...), as a
    plant that does not know the kind answers; the kinds it was sent."""
    seen: list[str] = []
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)

    def serve() -> None:
        try:
            while not stop.is_set():
                if not sock.poll(50):
                    continue
                peer, payload = sock.recv_multipart()
                seen.append(msg.peek_kind(payload))
                sock.send_multipart([peer, msg.encode(
                    "error", "unknown_kind", "'push' is not a kind of protocol 1")])
        finally:
            sock.close(linger=0)

    threading.Thread(target=serve, daemon=True).start()
    return seen


def test_an_error_answer_ends_the_command_at_once_naming_it() -> None:
    endpoint, stop = free_endpoint(), threading.Event()
    seen = answer_with_error(endpoint, stop)
    try:
        for argv in (["push", "force=1", "--for", "50ms"], ["clear"], ["gains"]):
            done = subprocess.run([str(BIN / "hil"), *argv, "--endpoint", endpoint,
                                   "--timeout", "60"], capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 4, (argv, done.stderr)
            assert f"the plant at {endpoint} answered the " in done.stderr
            assert "with error unknown_kind: 'push' is not a kind of protocol 1" in done.stderr
            assert "is hil-plant running there" not in done.stderr
    finally:
        stop.set()
    assert seen == ["push", "operator_clear", "gains_get"]

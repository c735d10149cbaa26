"""A scripted plant on a real ZeroMQ socket, for tests of the controller loop's public API.

The test plays the plant: it welcomes the controller (lockstep by default, on the same clock
so no sync is needed; clock syncs are answered when asked), sends states and other messages,
and waits for what the controller sends back. The loop under test runs in a thread
(`LoopThread`), as `hil-controller` runs it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from hil.link import messages as msg
from hil.link.transport import PlantSocket, monotonic_clock_id, wait_for_message

WAIT_NS = 10_000_000_000


class ScriptedPlant:
    def __init__(self, endpoint: str) -> None:
        self.sock = PlantSocket(endpoint)
        self.peer = b""
        self.t0_ns = 0
        self.syncs = 0

    def welcome(self, n_states: int = 4, mode: str = "lockstep", period_ns: int = 1_000_000,
                **extra: Any) -> msg.Message:
        """Wait for the hello and answer with a description; the hello."""
        hello = self.expect("hello")
        self.t0_ns = time.monotonic_ns()
        description = {"name": "scripted", "state_names": [f"s{i}" for i in range(n_states)],
                       "state_units": [""] * n_states, "mode": mode,
                       "rate_hz": 1e9 / period_ns, "period_ns": period_ns, "t0_ns": self.t0_ns,
                       "clock_id": monotonic_clock_id(time.monotonic_ns), **extra}
        self.send("welcome", msg.PROTOCOL_VERSION, description)
        return hello

    def send(self, kind: str, *fields: Any) -> None:
        self.sock.send(self.peer, msg.encode(kind, *fields))

    def state(self, seq: int, values: list[float], flags: int = 0) -> None:
        self.sock.send(self.peer, msg.pack_state(seq, self.t0_ns + seq * 1_000_000, values,
                                                 flags))

    def expect(self, kind: str, timeout_ns: int = WAIT_NS) -> msg.Message:
        """The next message of `kind` from the controller (clock syncs answered, other kinds
        skipped); TimeoutError after the timeout."""
        got: list[msg.Message] = []

        def take() -> bool:
            while (frames := self.sock.recv_nowait()) is not None:
                self.peer, data = frames
                m = msg.decode(data)
                if m.kind == "sync":
                    self.syncs += 1
                    self.send("sync_reply", m["t_ns"], time.monotonic_ns())
                elif m.kind == kind:
                    got.append(m)
                    return True
            return False

        if not wait_for_message(self.sock.sock, timeout_ns, take):
            raise TimeoutError(f"no {kind} came")
        return got[0]

    def serve_syncs(self, count: int = 16) -> None:
        """Answer the controller's clock syncs until `count` were answered."""
        give_up = time.monotonic() + WAIT_NS / 1e9
        while self.syncs < count:
            assert time.monotonic() < give_up, f"{self.syncs} of {count} clock syncs came"
            try:
                self.expect("no other kind", 100_000_000)
            except TimeoutError:
                continue

    def close(self) -> None:
        self.sock.close()


class LoopThread:
    """`loop.run()` in a thread: its end reason, or the exception it raised."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.reason = self.loop.run()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout_s: float = 30.0) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the loop did not end"

"""The link as fault injection makes it (`faults.state_latency_ms`, `control_latency_ms`,
`jitter_ms`, `drop_rate`, `sensor_noise_std`): states measured with noise, held, dropped;
controls held or dropped; what is held sent or applied when due, in due order."""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

import numpy as np

from hil.link import messages as msg
from plant_server.faults import FaultInjector
from plant_server.parts import DataPlane

StatePayload = tuple[int, int, list[float], int]  # seq, t_ns, state, flags
T = TypeVar("T")


class _Queue(Generic[T]):
    """Items by due time; equal times keep their arrival order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._order = 0

    def push(self, due_ns: int, item: T) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due_ns, self._order, item))

    def next_due_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ns: int) -> list[T]:
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now_ns:
            due.append(heapq.heappop(heap)[2])
        return due


class FaultyLink:
    def __init__(self, faults: FaultInjector, data: DataPlane) -> None:
        self._faults = faults
        self._data = data
        self._states: _Queue[StatePayload] = _Queue()
        self._controls: _Queue[msg.Message] = _Queue()

    def send_state(self, peer: bytes, seq: int, t_ns: int, state: np.ndarray,
                   flags: int) -> None:
        """Publish `state` as the sensors measure it, now, later or never (the final
        state always, at once)."""
        payload = (seq, t_ns, self._faults.measured(state), flags)
        delay = self._faults.state_delay_ns() if not flags & msg.FLAG_FINAL else 0
        if delay == 0:
            self._data.send_state(peer, *payload)
        elif delay is not None:
            self._states.push(t_ns + delay, payload)

    def arrives_now(self, m: msg.Message, now: int) -> bool:
        """True: apply the control now; False: it is held (applied when due) or lost."""
        delay = self._faults.control_delay_ns()
        if delay is not None and delay > 0:
            self._controls.push(now + delay, m)
        return delay == 0

    def next_due_ns(self) -> int | None:
        """The earliest time something held is due (the tick's wait wakes for it)."""
        times = [t for t in (self._states.next_due_ns(), self._controls.next_due_ns())
                 if t is not None]
        return min(times) if times else None

    def release(self, now: int, peer: bytes | None) -> list[msg.Message]:
        """Send the held states that are due (to `peer`); the held controls that are due."""
        for payload in self._states.pop_due(now):
            if peer is not None:
                self._data.send_state(peer, *payload)
        return self._controls.pop_due(now)

"""Observers of a running plant (`hil watch --endpoint`): a decimated copy of the newest
state, never waited for.

A peer subscribes with `observe` and renews its lease by saying it again; at most
`MAX_OBSERVERS` at once. Each copy is sent NOBLOCK: a full queue drops it (counted, and told
to that observer in its next copy), a vanished or expired observer is forgotten.
ROUTER_MANDATORY is on only while sending copies, so a full queue is reported (EAGAIN)
instead of dropped silently.
"""

from __future__ import annotations

from typing import Any

import zmq

from hil.link import messages as msg
from hil.link.transport import PlantSocket

# seq, t_ns, sim_time_s, state, input, flags, steps, misses, round_trip_ns, safe_reason
ObservationFields = tuple[int, int, float, list[float], list[float], int, int, int, int, str]


class Observers:
    def __init__(self, sock: PlantSocket, period_ns: int, run_id: str) -> None:
        self._sock = sock
        self._run_id = run_id
        self._leases: dict[bytes, list[int]] = {}  # peer -> [lease end ns, copies dropped]
        self.every = max(1, round(1e9 / (period_ns * msg.OBSERVE_HZ)))  # publishes a copy
        self.counts = dict.fromkeys(
            ("subscribed", "refused", "expired", "gone", "sent", "dropped"), 0)

    def __bool__(self) -> bool:
        return bool(self._leases)

    def subscribe(self, peer: bytes, m: msg.Message, now: int,
                  description: dict[str, Any]) -> str | None:
        """Subscribe `peer` or renew its lease; the rejection kind to count, if refused."""
        lease_end = now + msg.OBSERVE_LEASE_MS * 1_000_000
        lease = self._leases.get(peer)
        if lease is not None:
            lease[0] = lease_end
            return None
        send = self._sock.send
        if m["protocol"] != msg.PROTOCOL_VERSION:
            send(peer, msg.encode("refuse", "version_mismatch", (
                f"protocol version mismatch: observer speaks {m['protocol']}, plant speaks "
                f"{msg.PROTOCOL_VERSION}")))
            return "version_mismatch"
        if len(self._leases) >= msg.MAX_OBSERVERS:
            self.counts["refused"] += 1
            send(peer, msg.encode("refuse", "observers_full", (
                f"this plant already has {msg.MAX_OBSERVERS} observers; close one "
                f"(hil watch) and try again")))
            return None
        self._leases[peer] = [lease_end, 0]
        self.counts["subscribed"] += 1
        send(peer, msg.encode("observing", msg.OBSERVE_LEASE_MS, self._run_id, description))
        return None

    def send_copies(self, t_ns: int, fields: ObservationFields) -> None:
        """`fields`: the observation's fields but the last, `dropped` (each observer's own)."""
        raw = self._sock.sock
        counts = self.counts
        raw.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            for peer, lease in list(self._leases.items()):
                if t_ns >= lease[0]:
                    del self._leases[peer]
                    counts["expired"] += 1
                    continue
                payload = msg.pack_observation(*fields, lease[1])
                try:
                    raw.send_multipart((peer, payload), zmq.NOBLOCK)
                    counts["sent"] += 1
                except zmq.Again:
                    lease[1] += 1
                    counts["dropped"] += 1
                except zmq.ZMQError:  # EHOSTUNREACH: disconnected
                    del self._leases[peer]
                    counts["gone"] += 1
        finally:
            raw.setsockopt(zmq.ROUTER_MANDATORY, 0)

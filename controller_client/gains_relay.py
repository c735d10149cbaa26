"""`hil gains`, relayed by the plant: report the law's gains, or set them through the law.

The law validates new gains (controllers/gains.py, its own `set_gains`); a law is user code,
so anything it raises is a refusal with its message, the old gains stay and the run goes on.
`GainsRelay.handle` returns the reply to send; every request to set gains is kept as an event
for the report (and `hil replay`), applied or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller_client.controllers.gains import GainError
from controller_client.ports import Log
from hil.link import messages as msg
from hil.runtime.ratelimit import RateLimiter

MAX_EVENTS = 1000


def law_name(law: object) -> str:
    return str(getattr(law, "name", type(law).__name__))


def requested_gains(names: Sequence[str], old: Sequence[float], keys: Sequence[Any],
                    values: Sequence[Any]) -> list[Any]:
    """The full gain vector a request asks for: `values` alone, or `old` with the named
    `keys` replaced; ValueError naming a key the law does not have."""
    if not keys:
        return list(values)
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} names for {len(values)} values")
    new: list[Any] = list(old)
    for key, value in zip(keys, values, strict=True):
        if key not in names:
            raise ValueError(f"no gain named {key!r}; the law's gains: {', '.join(names)}")
        new[names.index(key)] = value
    return new


class GainsRelay:
    """Answers gains_get / gains_set for `law`; keeps the gain-change events."""

    def __init__(self, law: object, log: Log, warn: RateLimiter) -> None:
        self._law = law
        self._log = log
        self._warn = warn
        self.events: list[dict[str, Any]] = []
        self.events_dropped = 0

    def handle(self, m: msg.Message, time_s: float) -> bytes:
        """The encoded gains_reply to `m`; a gains_set applied (or refused) at run time
        `time_s` is recorded as an event."""
        law = self._law
        names = [str(n) for n in getattr(law, "gain_names", ())]
        old = [float(v) for v in getattr(law, "gains", ())]
        if m.kind != "gains_set":
            return msg.encode("gains_reply", m["request_id"], True, "current gains", names,
                              old, old)
        ok, detail, now_gains = self._apply(names, old, m["names"], m["values"])
        event = {"time": time_s, "who": m["operator"][:80], "names": names, "old": old,
                 "new": now_gains if ok else None, "applied": ok, "detail": detail}
        self._keep(event)
        return msg.encode("gains_reply", m["request_id"], ok, detail, names, now_gains, old)

    def _apply(self, names: list[str], old: list[float], keys: list[Any], values: list[Any]
               ) -> tuple[bool, str, list[float]]:
        """(applied, detail, the gains now)."""
        law = self._law
        set_gains = getattr(law, "set_gains", None)
        if set_gains is None:
            return False, f"{law_name(law)} cannot change its gains while running (no " \
                "set_gains)", old
        try:
            new = requested_gains(names, old, keys, values)
        except ValueError as exc:
            return False, str(exc), old
        try:
            set_gains(new)
            return True, "applied before the next control", [
                float(v) for v in getattr(law, "gains", new)]
        except GainError as exc:  # names the law and the gain already
            return False, str(exc), old
        except Exception as exc:  # the law is user code: whatever it raises is a refusal
            return False, (f"{law_name(law)} refused the gains {new}: "
                           f"{type(exc).__name__}: {exc}"), old

    def _keep(self, event: dict[str, Any]) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)
        else:
            self.events_dropped += 1
        if event["applied"]:
            self._log.warning("gains changed", **event)
        elif self._warn.allow("gains refused"):
            self._log.warning("gains refused", **event,
                              suppressed=self._warn.take_suppressed("gains refused"))

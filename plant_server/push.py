"""`hil push`: an operator's push on a running simulated plant, checked, applied, kept.

A `push(input, value, duration_ms, operator)` from any peer but the controller adds `value`
to that input of the simulated plant from its arrival for `duration_ms` (on top of the
actuators and the experiment's disturbances: plant_server/backends/sim.py), and is answered
`ack("push", "pushed ...")`; or it changes nothing and the ack says `refused: <why>`:

- in lockstep (a run as fast as the link has no wall-clock time to push for; a push at a
  chosen time is an `experiment.disturbances` pulse), on a rig (plant.backend serial: the
  runtime does not move a rig's actuators), before the run has started;
- while the plant is latched safe (a push on a plant that is holding its safe output would
  drive it; clear first), or ending;
- for an input the plant does not have (naming those it has), a value that is not finite or
  beyond the input's limits (naming them), a duration not in 0 < ms <= MAX_PUSH_MS;
- while another push is under way (it says until when).

Each push applied is an event in plant.json (`pushes`: run time, input, value, duration,
operator) and a log line; refusals are counted. Nothing here runs per tick.
"""

from __future__ import annotations

import math
from typing import Any

from hil.dynamics.inputs import Inputs
from hil.link import messages as msg
from hil.link.transport import PlantSocket
from plant_server.backends.base import PlantBackend
from plant_server.guard import Guard
from plant_server.latch import MAX_LOGGED
from plant_server.parts import Log


class Pushes:
    """The plant's answer to `push` (module docstring); `report()` for plant.json."""

    def __init__(self, backend: PlantBackend, guard: Guard, sock: PlantSocket, log: Log) -> None:
        self._backend = backend
        self._guard = guard
        self._sock = sock
        self._log = log
        described = backend.describe()
        self._plant = str(described["name"])
        self._inputs = Inputs.from_description(described)
        self.events: list[dict[str, Any]] = []  # the first MAX_LOGGED; all are counted
        self.applied = 0
        self.refused = 0

    def on_push(self, peer: bytes, m: msg.Message, now: int) -> None:
        """Apply `m` or refuse it; either way the asker gets an `ack("push", ...)`."""
        refusal = self._refusal(m, now)
        if refusal is None:
            detail = self._apply(m, now)
        else:
            self.refused += 1
            detail = f"refused: {refusal}"
        self._sock.send(peer, msg.encode("ack", "push", detail))

    def report(self) -> dict[str, Any]:
        return {"applied": self.applied, "refused": self.refused, "events": list(self.events)}

    def _refusal(self, m: msg.Message, now: int) -> str | None:
        guard, times = self._guard, self._guard.times
        push = getattr(self._backend, "push", None)
        if times.lockstep:
            return ("a lockstep run has no wall-clock time to push for; push a realtime run, "
                    "or give experiment.disturbances a pulse at a time")
        if push is None:
            return (f"plant {self._plant!r} is a rig (plant.backend serial): the runtime does "
                    "not move its actuators; hil push needs the simulated plant")
        if guard.latch.safe:
            return (f"the plant is latched in its safe state ({guard.latch.reason}); clear it "
                    "first (hil clear), or let the run end")
        if times.t0_ns == 0 or now < times.t0_ns:
            return "the run has not started: no controller is driving the plant yet"
        return self._value_refusal(m, now)

    def _value_refusal(self, m: msg.Message, now: int) -> str | None:
        inputs, name, value = self._inputs, m["input"], m["value"]
        if name not in inputs.names:
            return (f"{name[:64]!r} is not an input of plant {self._plant!r}; its inputs: "
                    f"{', '.join(inputs.names)}")
        i = inputs.names.index(name)
        low, high, unit = inputs.low[i], inputs.high[i], inputs.units[i]
        if not math.isfinite(value) or not low <= value <= high:
            return (f"{name}={value:g} {unit} is beyond the input's limits [{low:g}, {high:g}] "
                    f"{unit}")
        duration = m["duration_ms"]
        if not 0.0 < duration <= msg.MAX_PUSH_MS:
            return (f"duration {duration:g} ms: a push lasts 0 < ms <= {msg.MAX_PUSH_MS:g}")
        until = getattr(self._backend, "push_until_ns", -1)
        if until > now:
            return f"another push is under way for {(until - now) / 1e6:.1f} ms more"
        return None

    def _apply(self, m: msg.Message, now: int) -> str:
        name, value, duration = m["input"], float(m["value"]), float(m["duration_ms"])
        i = self._inputs.names.index(name)
        self._backend.push(i, value, now, now + round(duration * 1e6))  # type: ignore[attr-defined]
        at_s = self._guard.times.run_time_s(now)
        operator = m["operator"][:80]
        self.applied += 1
        if len(self.events) < MAX_LOGGED:
            self.events.append({"time_s": at_s, "input": name, "value": value,
                                "duration_ms": duration, "operator": operator})
        unit = self._inputs.units[i]
        self._log.warning("operator push", input=name, value=value, unit=unit,
                          duration_ms=duration, at_s=round(at_s, 6), operator=operator)
        return f"pushed {name} by {value:g} {unit} for {duration:g} ms from t = {at_s:.3f} s"

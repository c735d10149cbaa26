"""Who may drive the plant: one controller at a time, as one table of transitions.

The plant's session is in one of four phases, and every change goes through `Session.on`
with one of the events below, looked up in `TRANSITIONS`; a pair that is not in the table
raises `SessionError` naming both (a bug in the plant, never a peer's doing: the plant only
asks what the table answers).

| phase     | event             | next      | what the plant does                                |
|-----------|-------------------|-----------|----------------------------------------------------|
| waiting   | hello             | attached  | welcome; the run clock starts (t0)                 |
| attached  | hello_again       | attached  | welcome again (the same peer asked twice)          |
| attached  | hello_other       | attached  | refuse `already_attached`                          |
| attached  | watchdog          | lost      | (the plant latched safe already)                   |
| attached  | clear             | attached  | (a gate's latch cleared)                           |
| lost      | hello_again       | lost      | welcome again; it finds the plant latched          |
| lost      | hello_other       | attached  | the newcomer replaces the lost controller, finds   |
|           |                   |           | the plant latched; the lost one is told `bye`      |
|           |                   |           | (replaced) and its controls are rejected           |
| lost      | clear             | attached  | the same controller drives again; a newcomer is    |
|           |                   |           | refused from now on                                |
| attached  | bye               | ended     | safe output, the run ends                          |
| lost      | bye               | ended     | safe output, the run ends                          |
| waiting   | clear             | waiting   | (nothing to clear)                                 |
| ended     | any hello         | ended     | refuse `run_ending`                                |
| ended     | clear, watchdog   | ended     | nothing                                            |

`lost` means "the attached controller tripped the watchdog": only then may a newcomer take
its place. A cleared trip gives the plant back to the controller that was attached, so a
second hello is refused again: who drives is never decided by who speaks first after a clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["TRANSITIONS", "Event", "Phase", "Session", "SessionError"]


class Phase(Enum):
    WAITING = "waiting"  # no controller yet: the plant holds its initial state
    ATTACHED = "attached"  # `peer` drives the plant
    LOST = "lost"  # `peer` tripped the watchdog: a newcomer may replace it
    ENDED = "ended"  # bye or e-stop: the run is ending


class Event(Enum):
    HELLO = "hello"  # a hello while no controller is attached
    HELLO_AGAIN = "hello_again"  # a hello from the attached controller
    HELLO_OTHER = "hello_other"  # a hello from another peer
    WATCHDOG = "watchdog"  # the attached controller let the watchdog expire
    CLEAR = "clear"  # the latched safe state was cleared
    BYE = "bye"  # the controller left, or the run ends (e-stop)


class Action(Enum):
    WELCOME = "welcome"
    ATTACH = "attach"  # welcome, and start the run clock
    REPLACE = "replace"  # welcome the newcomer, tell the lost one it was replaced
    REFUSE_ATTACHED = "already_attached"
    REFUSE_ENDING = "run_ending"
    NONE = "none"


TRANSITIONS: dict[tuple[Phase, Event], tuple[Phase, Action]] = {
    (Phase.WAITING, Event.HELLO): (Phase.ATTACHED, Action.ATTACH),
    (Phase.WAITING, Event.CLEAR): (Phase.WAITING, Action.NONE),
    (Phase.WAITING, Event.BYE): (Phase.ENDED, Action.NONE),
    (Phase.ATTACHED, Event.HELLO_AGAIN): (Phase.ATTACHED, Action.WELCOME),
    (Phase.ATTACHED, Event.HELLO_OTHER): (Phase.ATTACHED, Action.REFUSE_ATTACHED),
    (Phase.ATTACHED, Event.WATCHDOG): (Phase.LOST, Action.NONE),
    (Phase.ATTACHED, Event.CLEAR): (Phase.ATTACHED, Action.NONE),
    (Phase.ATTACHED, Event.BYE): (Phase.ENDED, Action.NONE),
    (Phase.LOST, Event.HELLO_AGAIN): (Phase.LOST, Action.WELCOME),
    (Phase.LOST, Event.HELLO_OTHER): (Phase.ATTACHED, Action.REPLACE),
    (Phase.LOST, Event.WATCHDOG): (Phase.LOST, Action.NONE),
    (Phase.LOST, Event.CLEAR): (Phase.ATTACHED, Action.NONE),
    (Phase.LOST, Event.BYE): (Phase.ENDED, Action.NONE),
    (Phase.ENDED, Event.HELLO_AGAIN): (Phase.ENDED, Action.REFUSE_ENDING),
    (Phase.ENDED, Event.HELLO_OTHER): (Phase.ENDED, Action.REFUSE_ENDING),
    (Phase.ENDED, Event.HELLO): (Phase.ENDED, Action.REFUSE_ENDING),
    (Phase.ENDED, Event.WATCHDOG): (Phase.ENDED, Action.NONE),
    (Phase.ENDED, Event.CLEAR): (Phase.ENDED, Action.NONE),
    (Phase.ENDED, Event.BYE): (Phase.ENDED, Action.NONE),
}


class SessionError(RuntimeError):
    """The plant asked for a transition the table does not have (a bug in the plant)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a hello led to: the action, the peer it displaced (REPLACE) if any, and for a
    refusal its code and the reason the peer is told."""

    action: Action
    replaced: bytes | None = None
    refusal: tuple[str, str] | None = None


_REFUSALS = {
    Action.REFUSE_ATTACHED: "a controller is already attached to this plant; stop it first",
    Action.REFUSE_ENDING: "this plant's run is ending; start a new run",
}


class Session:
    """The phase and the attached peer; `on` is the one place that changes them."""

    def __init__(self) -> None:
        self.phase = Phase.WAITING
        self.peer: bytes | None = None
        self.replacements = 0

    def drives(self, peer: bytes) -> bool:
        """`peer` is the attached controller (its messages are judged, not rejected as a
        stranger's), until the process ends."""
        return self.peer is not None and peer == self.peer

    @property
    def may_be_replaced(self) -> bool:
        """A hello from a newcomer would be taken (no controller yet, or the one lost)."""
        return self.phase in (Phase.WAITING, Phase.LOST)

    def hello(self, peer: bytes, protocol: int, speaks: int) -> Outcome:
        """A hello from `peer` speaking `protocol`; the plant speaks `speaks`."""
        if protocol != speaks:
            return Outcome(Action.NONE, refusal=("version_mismatch", (
                f"protocol version mismatch: controller speaks {protocol}, plant speaks "
                f"{speaks}")))
        if self.peer is None:
            event = Event.HELLO
        else:
            event = Event.HELLO_AGAIN if peer == self.peer else Event.HELLO_OTHER
        old = self.peer
        action = self.on(event)
        if action is Action.ATTACH:
            self.peer = peer
        elif action is Action.REPLACE:
            self.peer = peer
            self.replacements += 1
            return Outcome(action, replaced=old)
        reason = _REFUSALS.get(action)
        return Outcome(action, refusal=None if reason is None else (action.value, reason))

    def on(self, event: Event) -> Action:
        """Apply `event` by the table; the action the plant takes."""
        try:
            self.phase, action = TRANSITIONS[(self.phase, event)]
        except KeyError:
            raise SessionError(f"no transition from {self.phase.value} on {event.value}") from None
        return action

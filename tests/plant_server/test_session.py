"""Who may drive the plant: every row of plant_server/session.py's table, and every pair
that is not in it."""

from __future__ import annotations

import pytest

from hil.link.messages import PROTOCOL_VERSION
from plant_server.session import TRANSITIONS, Action, Event, Phase, Session, SessionError

A, B = b"controller-a", b"newcomer-b"
V = PROTOCOL_VERSION  # the protocol spoken


def _in(phase: Phase) -> Session:
    """A session brought to `phase` through the table itself, A attached where there is one."""
    session = Session()
    if phase is Phase.WAITING:
        return session
    assert session.hello(A, V, V).action is Action.ATTACH
    if phase is Phase.LOST:
        session.on(Event.WATCHDOG)
    elif phase is Phase.ENDED:
        session.on(Event.BYE)
    assert session.phase is phase
    return session


@pytest.mark.parametrize(("start", "event"), sorted(TRANSITIONS, key=str), ids=str)
def test_each_row_of_the_table_is_what_the_session_does(start: Phase, event: Event) -> None:
    session = _in(start)
    after, action = TRANSITIONS[(start, event)]
    assert session.on(event) is action
    assert session.phase is after


def test_pairs_outside_the_table_raise_naming_both() -> None:
    missing = [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS]
    assert missing == [(Phase.WAITING, Event.HELLO_AGAIN), (Phase.WAITING, Event.HELLO_OTHER),
                       (Phase.WAITING, Event.WATCHDOG), (Phase.ATTACHED, Event.HELLO),
                       (Phase.LOST, Event.HELLO)]
    for phase, event in missing:
        with pytest.raises(SessionError, match=f"from {phase.value} on {event.value}"):
            _in(phase).on(event)


def test_a_cleared_trip_gives_the_plant_back_to_its_controller_not_to_a_newcomer() -> None:
    session = _in(Phase.LOST)
    session.on(Event.CLEAR)
    outcome = session.hello(B, V, V)
    assert outcome.action is Action.REFUSE_ATTACHED
    assert outcome.refusal is not None and outcome.refusal[0] == "already_attached"
    assert session.peer == A and session.drives(A) and not session.drives(B)


def test_a_newcomer_replaces_only_a_lost_controller_and_the_lost_one_is_named() -> None:
    session = _in(Phase.ATTACHED)
    assert session.hello(B, V, V).action is Action.REFUSE_ATTACHED
    session.on(Event.WATCHDOG)
    outcome = session.hello(B, V, V)
    assert (outcome.action, outcome.replaced) == (Action.REPLACE, A)
    assert session.phase is Phase.ATTACHED and session.peer == B and session.replacements == 1
    assert not session.drives(A)
    # The lost one says hello again: the plant is B's now.
    assert session.hello(A, V, V).action is Action.REFUSE_ATTACHED


def test_the_same_controller_saying_hello_again_is_welcomed_in_any_live_phase() -> None:
    for phase in (Phase.ATTACHED, Phase.LOST):
        session = _in(phase)
        assert session.hello(A, V, V).action is Action.WELCOME
        assert session.phase is phase and session.peer == A


def test_a_hello_to_an_ending_run_or_in_another_protocol_is_refused_saying_why() -> None:
    outcome = _in(Phase.ENDED).hello(B, V, V)
    assert outcome.refusal is not None and outcome.refusal[0] == "run_ending"
    session = Session()
    outcome = session.hello(A, V + 1, V)
    assert outcome.refusal == ("version_mismatch",
                               f"protocol version mismatch: controller speaks {V + 1}, plant "
                               f"speaks {V}")
    assert session.phase is Phase.WAITING and session.peer is None


def test_a_protocol_1_controller_is_refused_by_a_protocol_2_plant_naming_both() -> None:
    """Protocol 2 made the control's input a vector: a controller of protocol 1 (one number)
    is refused at its hello, and may not attach."""
    assert V == 2
    session = Session()
    outcome = session.hello(A, 1, V)
    assert outcome.action is Action.NONE
    assert outcome.refusal == ("version_mismatch",
                               "protocol version mismatch: controller speaks 1, plant speaks 2")
    assert session.phase is Phase.WAITING and session.peer is None
    assert session.hello(A, V, V).action is Action.ATTACH

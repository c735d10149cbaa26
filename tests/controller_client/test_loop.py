"""The controller loop through its public API against a scripted plant on a real socket: gain
changes a law refuses, what a law returns (one number per input of the plant), a plant the
link cannot carry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import structlog
from scripted_plant import LoopThread, ScriptedPlant

from controller_client.answer import LawError
from controller_client.controllers import create_controller
from controller_client.loop import ControllerLoop, Ending, LoopSettings
from controller_client.session import HandshakeRefused
from hil.link.transport import ControllerSocket

SETTINGS = LoopSettings(phase_offset=0.3, spin_ns=0, connect_timeout_ns=10_000_000_000,
                        plant_timeout_ns=10_000_000_000)
DIP_STATE = [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]


class Returns:
    """A law that returns `value` whatever the state."""

    sigma = math.nan
    mass_condition = math.nan
    name = "returns"

    def __init__(self, value: Any) -> None:
        self.value = value

    def compute(self, state: np.ndarray, t: float) -> Any:
        return self.value

    def reset(self) -> None:
        pass


@pytest.fixture
def link(endpoint: str) -> Any:
    plant = ScriptedPlant(endpoint)
    sock = ControllerSocket(endpoint)
    yield plant, sock
    sock.close()
    plant.close()


# A plant of two inputs, as its description names them.
TWO_INPUTS = {"input_names": ["thrust_left", "thrust_right"], "input_units": ["N", "N"],
              "input_limits": [[0.0, 40.0], [0.0, 40.0]]}


def start(law: Any, link: Any, n_states: int = 6,
          **description: Any) -> tuple[ScriptedPlant, ControllerLoop, LoopThread]:
    plant, sock = link
    loop = ControllerLoop(law, sock, SETTINGS, structlog.get_logger())
    running = LoopThread(loop)
    plant.welcome(n_states=n_states, **description)
    return plant, loop, running


def test_a_gain_change_the_law_refuses_with_any_error_is_answered_and_the_run_goes_on(
        link: Any) -> None:
    law = create_controller("lqr")
    plant, loop, running = start(law, link)
    plant.state(0, DIP_STATE)
    before = plant.expect("control")["u"]
    assert len(before) == 1 and isinstance(before[0], float)
    # r = 1e-12 passes the generic check; the Riccati solver raises (an ArithmeticError).
    plant.send("gains_set", 1, "op@host", ["r"], [1e-12])
    reply = plant.expect("gains_reply")
    assert reply["ok"] is False
    assert reply["detail"].startswith("lqr refused the gains [10.0, 100.0, 100.0, 1.0, 1.0, "
                                      "1.0, 1e-12]: RiccatiError: CARE did not converge")
    assert reply["values"] == reply["old"] == [10.0, 100.0, 100.0, 1.0, 1.0, 1.0, 0.01]
    plant.state(1, DIP_STATE)
    assert plant.expect("control")["u"] == before  # the old gains, still running
    plant.send("gains_set", 2, "op@host", ["r"], [0.02])
    assert plant.expect("gains_reply")["ok"] is True
    plant.send("bye", "duration")
    running.join()
    assert running.reason == "plant ended the run: duration", running.error
    events = loop.report()["gain_changes"]
    assert [(e["applied"], e["new"] and e["new"][-1]) for e in events] == [(False, None),
                                                                          (True, 0.02)]
    assert "RiccatiError" in events[0]["detail"] and law.gains[-1] == 0.02


@pytest.mark.parametrize("value", [np.float32(-1.5), np.array([-1.5]), [-1.5], -1.5],
                         ids=repr)
def test_a_number_in_any_numeric_form_is_sent_as_the_control(link: Any, value: Any) -> None:
    plant, loop, running = start(Returns(value), link)
    plant.state(0, DIP_STATE)
    assert plant.expect("control")["u"] == [-1.5]
    plant.send("bye", "duration")
    running.join()
    assert running.error is None and loop.report()["controls_sent"] == 1


@pytest.mark.parametrize("value", [np.array([1.5, 20.0]), [1.5, 20.0], (1.5, np.float64(20.0)),
                                   np.array([[1.5], [20.0]]), [np.float32(1.5), 20]],
                         ids=repr)
def test_one_number_per_input_in_any_numeric_form_is_sent_as_the_vector(
        link: Any, value: Any) -> None:
    plant, loop, running = start(Returns(value), link, **TWO_INPUTS)
    plant.state(0, DIP_STATE)
    u = plant.expect("control")["u"]
    assert u == [1.5, 20.0] and all(type(v) is float for v in u)
    plant.send("bye", "duration")
    running.join()
    assert running.error is None and loop.report()["controls_sent"] == 1


@pytest.mark.parametrize(("value", "message"), [
    (None, "control law returns returned None (NoneType), not a real number"),
    ("0", "control law returns returned '0' (str), not a real number"),
    (np.zeros(2), "control law returns returned 2 values (shape (2,)) for 1 input"),
], ids=repr)
def test_anything_else_ends_the_run_as_the_law_s_error_and_sends_nothing(
        link: Any, value: Any, message: str) -> None:
    _the_law_s_error_and_nothing_sent(link, value, message)


@pytest.mark.parametrize(("value", "message"), [
    (1.5, "control law returns returned 1.5 for 2 inputs; return one number per input"),
    (np.array([1.5]), "control law returns returned 1 values (shape (1,)) for 2 inputs"),
    ([1.0, 2.0, 3.0], "control law returns returned 3 values (shape 3) for 2 inputs"),
    ([1.0, "2"], "control law returns returned element 1 = '2' (str), not a real number"),
], ids=repr)
def test_a_law_that_does_not_return_one_number_per_input_ends_the_run_saying_so(
        link: Any, value: Any, message: str) -> None:
    _the_law_s_error_and_nothing_sent(link, value, message, **TWO_INPUTS)


def _the_law_s_error_and_nothing_sent(link: Any, value: Any, message: str,
                                      **description: Any) -> None:
    plant, loop, running = start(Returns(value), link, **description)
    plant.state(0, DIP_STATE)
    running.join()
    assert isinstance(running.error, LawError) and running.error.law == "returns"
    assert str(running.error).startswith(message)
    with pytest.raises(TimeoutError):
        plant.expect("control", 200_000_000)
    report = loop.report()  # still whole after the error
    assert report["controls_sent"] == 0 and report["states_received"] == 1


def test_a_plant_with_more_states_than_the_link_carries_is_refused_at_the_handshake(
        link: Any) -> None:
    _, loop, running = start(Returns(0.0), link, n_states=33)
    running.join()
    assert isinstance(running.error, HandshakeRefused)
    assert running.error.code == "too_many_states" and running.error.by == "controller"
    assert ("the plant 'scripted' has 33 states; the link carries at most 32 "
            "(hil.link.messages.MAX_STATE_DIM)") in str(running.error)
    assert loop.ending is Ending.NOT_STARTED


def test_a_bye_that_says_replaced_ends_the_run_without_a_bye_of_ours(link: Any) -> None:
    plant, loop, running = start(Returns(0.0), link)
    plant.send("bye", "replaced: controller hil-controller@b took over")
    running.join()
    assert loop.ending is Ending.REPLACED
    assert running.reason == ("replaced by another controller: replaced: controller "
                              "hil-controller@b took over")
    loop.send_bye()
    with pytest.raises(TimeoutError):
        plant.expect("bye", 200_000_000)


def test_the_plants_error_answers_are_counted_by_code_and_the_run_goes_on(link: Any) -> None:
    """docs/protocol.md section 7: the plant answers a message it rejects with `error`; the
    controller counts them by code in its report and keeps running until the plant ends."""
    plant, loop, running = start(Returns(0.0), link)
    for code in ("not_newest", "stale_control", "not_newest"):
        plant.send("error", code, f"{code}: the rule and its fix")
    plant.send("bye", "duration")
    running.join()
    assert loop.ending is Ending.PLANT_ENDED
    assert loop.report()["plant_errors"] == {"not_newest": 2, "stale_control": 1}

"""The compiled closed-loop simulation and the fitness used for tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller_client.controllers import UnknownControllerError, create_controller
from controller_client.tuning import FALLEN_COST, fitness, simulate

START = (0.0, 0.1, -0.05, 0.0, 0.0, 0.0)


def test_trajectory_records_every_step_from_the_start() -> None:
    law = create_controller("lqr")
    traj = np.zeros((101, 6))
    r = simulate(law, START, 0.1, trajectory=traj)
    np.testing.assert_array_equal(traj[0], START)
    np.testing.assert_array_equal(traj[-1], r.final_state)
    assert r.steps == 100 and not r.fallen


def test_simulation_arguments_are_checked() -> None:
    law = create_controller("lqr")
    with pytest.raises(ValueError, match="delay must be within"):
        simulate(law, START, 0.1, delay=1.5)
    with pytest.raises(ValueError, match=r"trajectory must have shape \(101, 6\)"):
        simulate(law, START, 0.1, trajectory=np.zeros((10, 6)))


def test_delay_changes_the_run_but_not_the_outcome() -> None:
    law = create_controller("classical_smc")
    lockstep, delayed = simulate(law, START, 1.0, delay=0.0), simulate(law, START, 1.0, delay=1.0)
    assert lockstep.final_state != delayed.final_state
    assert not lockstep.fallen and not delayed.fallen


def test_a_fall_is_penalised_and_stops_the_run() -> None:
    # The research project's gains on this surface: zero-dynamics modes at +4.3 and +0.57 /s.
    law = create_controller("classical_smc", [20, 15, 12, 8, 35, 5])
    r = simulate(law, START, 5.0)
    assert r.fallen and r.steps < 5000 and r.cost > FALLEN_COST
    assert not r.upright


def test_fitness_scores_rejected_gains_as_infinite_but_raises_on_unknown_names() -> None:
    assert fitness("classical_smc", [2, 16, 42, 7.2, -1, 5]) == math.inf
    assert fitness("classical_smc", [2, 16, 42, 7.2, 20, 5]) < 1.0
    with pytest.raises(UnknownControllerError):
        fitness("pid", [1.0])

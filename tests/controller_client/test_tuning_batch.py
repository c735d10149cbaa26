"""The compiled batch, the draws, the bounds and the robust cost of `hil tune`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from controller_client import controllers
from controller_client.controllers import create_controller
from controller_client.tuning import simulate
from controller_client.tuning.batch import (
    GATES,
    M_ANGLE,
    M_CHATTER,
    M_EFFORT,
    M_FALLEN,
    M_GATE,
    M_POSITION,
    M_STEPS,
    Scenario,
    has_kernel,
    run_batch,
    trajectory,
)
from controller_client.tuning.engine import (
    LocalEvaluator,
    Problem,
    best_of,
    law_factory,
    optimise,
)
from controller_client.tuning.outputs import trajectory_panels
from controller_client.tuning.plants import (
    draw_params,
    packed_params,
    plant_facts,
    plant_model,
    plant_spec,
)
from controller_client.tuning.problem import (
    FAILED_COST,
    INFEASIBLE_COST,
    Settings,
    TuningError,
    ZeroDynamics,
    check_settings,
    evaluation_costs,
    law_bounds,
    robust_cost,
)
from hil.dynamics import CartPoleModel, DIPModel, HelicopterModel, RotaryModel
from hil.dynamics.dip import DIPParams

START = (0.0, 0.1, -0.05, 0.0, 0.0, 0.0)
DIP = plant_spec("dip", {}, 4)
NOMINAL = (tuple(sorted(DIPParams().to_dict().items())),)


def draw_plants(s: Settings, stream: int) -> tuple:
    return draw_params(DIP, s.seed, stream, s.draws, s.uncertainty)


def scenario(draws: tuple, steps: int = 1000, delay: float = 1.0) -> Scenario:
    return Scenario(DIP, draws, packed_params(DIP, draws), np.array([START]), steps, 1e-3, 4,
                    delay, plant_facts(plant_model(DIP), 1.0, 2.0, 10.0))


def maker(name: str):
    return lambda gains: create_controller(name, list(gains))


def test_batch_on_the_nominal_plant_reproduces_the_single_simulation() -> None:
    # simulate() runs the law against its own nominal model: an independent loop.
    for name in ("classical_smc", "lqr", "sta_smc"):
        law = create_controller(name)
        ref = simulate(law, START, 1.0, delay=1.0)
        m = run_batch(maker(name), np.array([law.gains]), scenario(NOMINAL))[0, 0, 0]
        weighted = m[M_ANGLE] + 0.1 * m[M_POSITION] + 1e-6 * m[M_EFFORT]
        assert weighted == pytest.approx(ref.cost, rel=1e-12)
        assert m[M_STEPS] == ref.steps == 1000 and m[M_FALLEN] == 0


def test_every_cell_of_a_batch_equals_its_own_single_evaluation() -> None:
    s = Settings("classical_smc", draws=3, uncertainty=0.1, seed=4)
    plants = draw_plants(s, 0)
    rows = np.array([[2.0, 16.0, 42.0, 7.2, 20.0, 5.0], [2.5, 15.0, 40.0, 8.0, 30.0, 3.0]])
    whole = run_batch(maker("classical_smc"), rows, scenario(plants))
    for n in range(2):
        for k in range(3):
            one = run_batch(maker("classical_smc"), rows[n:n + 1], scenario(plants[k:k + 1]))
            np.testing.assert_array_equal(whole[n, k], one[0, 0])


HERE = str(Path(__file__).resolve().parent)


def test_a_law_with_only_python_compute_is_evaluated_with_the_same_figures(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading "module:Class" registers it; the registry is put back after the test, so that
    # tests counting the registered laws (test_controllers_thread.py) see only theirs.
    monkeypatch.setattr(controllers, "_snapshot", controllers._snapshot)
    plants = draw_plants(Settings("classical_smc", draws=2, seed=1), 0)
    rows = np.array([[2.0, 16.0, 42.0, 7.2, 20.0, 5.0], [2.5, 15.0, 40.0, 8.0, 30.0, 3.0]])
    python_law = law_factory("tuning_laws:PythonSMC", {}, 1e-3, (HERE,))
    assert not has_kernel(python_law(rows[0]))
    py = run_batch(python_law, rows, scenario(plants, steps=300))
    compiled = run_batch(maker("classical_smc"), rows, scenario(plants, steps=300))
    np.testing.assert_allclose(py, compiled, rtol=1e-12, atol=1e-15)


def test_a_fall_trips_the_angle_gate_stops_the_evaluation_and_fails_the_draw() -> None:
    # The research project's same-sign gains fall on this surface (test_zero_dynamics).
    m = run_batch(maker("classical_smc"), np.array([[20, 15, 12, 8, 35, 5]]),
                  scenario(NOMINAL, steps=5000))
    assert m[0, 0, 0, M_FALLEN] == 1 and m[0, 0, 0, M_STEPS] < 5000
    assert GATES[int(m[0, 0, 0, M_GATE])] == "angle"
    early, late = m.copy(), m.copy()
    early[..., M_STEPS], late[..., M_STEPS] = 100, 4000
    c_early, c_late = evaluation_costs(early, 5000), evaluation_costs(late, 5000)
    assert c_early > c_late >= FAILED_COST


def test_chattering_is_the_total_variation_of_the_force() -> None:
    law = create_controller("classical_smc")
    sc = scenario(NOMINAL, steps=500)
    _, _, inputs = trajectory(maker("classical_smc"), law.gains, sc, 0)
    forces = inputs[:, 0]
    m = run_batch(maker("classical_smc"), np.array([law.gains]), sc)[0, 0, 0]
    assert m[M_CHATTER] == pytest.approx(np.abs(np.diff(forces)).sum(), rel=1e-12)
    assert m[M_EFFORT] == pytest.approx((forces ** 2).sum() * 1e-3, rel=1e-12)


def test_draws_are_seeded_within_the_uncertainty_and_streams_differ() -> None:
    s = Settings("classical_smc", draws=50, uncertainty=0.05, seed=7)
    a, b = packed_params(DIP, draw_plants(s, 0)), packed_params(DIP, draw_plants(s, 0))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, packed_params(DIP, draw_plants(s, 1)))
    # packed[0] = total mass, [8] = cart friction (see hil/dynamics/dip.py)
    nominal = DIPParams()
    total = nominal.cart_mass_kg + nominal.link1_mass_kg + nominal.link2_mass_kg
    assert np.all(np.abs(a[:, 0] / total - 1) <= 0.05 + 1e-12)
    friction = a[:, 8] / nominal.cart_friction_nspm
    assert np.all(np.abs(friction - 1) <= 0.10 + 1e-12) and np.abs(friction - 1).max() > 0.05
    zero = draw_plants(Settings("classical_smc", draws=2, uncertainty=0.0), 0)
    np.testing.assert_array_equal(packed_params(DIP, zero),
                                  np.stack([DIPParams().as_array()] * 2))


def test_robust_cost_mixes_mean_and_worst() -> None:
    per_draw = np.array([[1.0, 2.0, 6.0]])
    assert robust_cost(per_draw, 0.7)[0] == pytest.approx(0.7 * 3.0 + 0.3 * 6.0)
    assert robust_cost(per_draw, 1.0)[0] == pytest.approx(3.0)


def test_zero_dynamics_check_matches_the_documented_eigenvalues() -> None:
    zd = ZeroDynamics(DIPParams(), 4.0, 0.45)
    assert zd.slowest(2.0, 16.0, 42.0, 7.2) == pytest.approx(-0.877, abs=2e-3)
    assert zd.slowest(2.0, 16.0, 42.0, 7.2 * 0.5) > 0  # this corner of the box is unstable


def test_bounds_default_around_the_gains_and_the_config_overrides_them() -> None:
    law = create_controller("classical_smc")
    lo, hi = law_bounds(law)
    assert lo == tuple(0.5 * g for g in law.default_gains)
    assert hi == tuple(2.0 * g for g in law.default_gains)
    lo, hi = law_bounds(law, {"K": [1.0, 50.0]})
    assert (lo[4], hi[4]) == (1.0, 50.0)
    with pytest.raises(TuningError, match="does not have; its gains: k1"):
        law_bounds(law, {"Kp": [1.0, 2.0]})
    with pytest.raises(TuningError, match="low < high"):
        law_bounds(law, {"K": [5.0, 1.0]})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("budget", 0, "--budget must be >= 1"), ("draws", 0, "--draws must be >= 1"),
    ("uncertainty", 0.6, r"--uncertainty must be within \[0, 0.5\]"),
    ("uncertainty", -0.1, r"--uncertainty must be within \[0, 0.5\]")])
def test_settings_out_of_range_are_refused_with_the_fix(field: str, value: float,
                                                        message: str) -> None:
    s = Settings("classical_smc", **{field: value})
    with pytest.raises(TuningError, match=message):
        check_settings(s)


def tiny(name: str = "classical_smc", **kw: object) -> Settings:
    law = create_controller(name)
    lo, hi = law_bounds(law)
    base = dict(controller=name, lower=lo, upper=hi, budget=24, draws=2, batch_size=8,
                duration_s=0.3, seed=3)
    base.update(kw)
    return Settings(**base)


def test_infeasible_candidates_are_not_simulated_and_cost_more_than_any_fall() -> None:
    p = Problem(tiny(), LocalEvaluator("classical_smc", {}, 1))
    unstable = [2.0, 16.0, 42.0, 3.6, 20.0, 5.0]
    costs = p.costs(np.array([unstable, p.default_gains]))
    assert costs[0] > INFEASIBLE_COST and costs[1] < 1.0
    assert p.infeasibility([2.0, 16.0, 42.0, 7.2, -1.0, 5.0]) == 2 * INFEASIBLE_COST


@pytest.mark.parametrize("optimizer", ["pso", "cma", "de"])
def test_same_settings_same_history_and_a_replayed_history_continues_identically(
        optimizer: str) -> None:
    s = tiny(optimizer=optimizer)
    p = Problem(s, LocalEvaluator("classical_smc", {}, 2))
    whole = optimise(p, [])
    assert sum(len(b.costs) for b in whole) == 24
    stop_after = {"n": 0}

    def stop() -> bool:
        stop_after["n"] += 1
        return stop_after["n"] > 1  # one batch, then stop

    part = optimise(Problem(s, LocalEvaluator("classical_smc", {}, 1)), [], should_stop=stop)
    assert len(part) == 1
    resumed = optimise(Problem(s, LocalEvaluator("classical_smc", {}, 1)), part)
    assert [b.candidates for b in resumed] == [b.candidates for b in whole]
    assert [b.costs for b in resumed] == [b.costs for b in whole]
    best, cost, _ = best_of(whole)
    assert math.isfinite(cost) and len(best) == 6


@pytest.mark.parametrize(("model", "labels"), [
    (DIPModel, [("state", 0, "x (m)"), ("state", 1, "theta1 (rad)"),
                ("state", 2, "theta2 (rad)"), ("input", 0, "force (N)")]),
    (CartPoleModel, [("state", 0, "x (m)"), ("state", 1, "theta (rad)"),
                     ("input", 0, "force (N)")]),
    (RotaryModel, [("state", 0, "arm (rad)"), ("state", 1, "pendulum (rad)"),
                   ("input", 0, "voltage (V)")]),
    (HelicopterModel, [("state", 0, "pitch (rad)"), ("state", 1, "yaw (rad)"),
                       ("input", 0, "pitch_voltage (V)"), ("input", 1, "yaw_voltage (V)")]),
])
def test_the_worst_draw_plot_takes_its_panels_from_the_plant_model(model, labels) -> None:
    """Positions and angles (not their rates) and each input, named and in units as the
    model describes them (hil.dynamics), not as the DIP would."""
    assert trajectory_panels(model()) == labels

"""`hil tune`'s simulation core on every plant: built-in models, a lab's plant with and
without a kernel, its gates as a hard constraint, its draws, its search box."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tuning_plugins import write_plugins

from controller_client import controllers
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
    run_batch,
)
from controller_client.tuning.command import _bounds_option, _search_box, _Usage
from controller_client.tuning.engine import LocalEvaluator, Problem, law_factory
from controller_client.tuning.plants import (
    DERIV_SCALAR,
    PYTHON,
    STEP,
    draw_params,
    packed_params,
    plant_facts,
    plant_model,
    plant_spec,
    step_functions,
)
from controller_client.tuning.problem import (
    FAILED_COST,
    Settings,
    TuningError,
    evaluation_costs,
    robust_cost,
)
from hil.dynamics import create_model


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """The lab's plant and law in a folder of their own; the controller registry is put
    back after (tests counting the registered laws see only theirs)."""
    saved = controllers._snapshot
    yield str(write_plugins(tmp_path_factory.mktemp("lab")))
    controllers._snapshot = saved


def scenario(spec, start, steps: int, dt_s: float = 2e-3, delay: float = 1.0,
             draws: int = 2, seed: int = 3, angle_limit: float | None = 1.0,
             track_limit: float | None = 2.0, uncertainty: float = 0.05) -> Scenario:
    d = draw_params(spec, seed, 0, draws, uncertainty)
    return Scenario(spec, d, packed_params(spec, d), np.array([start]), steps, dt_s, 4, delay,
                    plant_facts(plant_model(spec), angle_limit, track_limit, 10.0))


def reference(law, model, start, steps: int, dt_s: float, regulated: list[int],
              others: list[int]) -> tuple[float, float, float, int]:
    """(angle ISE, position ISE, effort, steps) by the runtime's own model.step, the input
    acting one period late (a realtime run), written out here without the core."""
    x, nxt, u_prev = np.array(start, dtype=float), np.empty(len(start)), 0.0
    angle = position = effort = 0.0
    for k in range(steps):
        u = float(law.compute(x.copy(), k * dt_s))
        model.step(x, np.array([u_prev]), dt_s, nxt)
        x[:] = nxt
        u_prev = u
        angle += sum(x[i] ** 2 for i in regulated) * dt_s
        position += sum(x[i] ** 2 for i in others) * dt_s
        effort += u * u * dt_s
    return angle, position, effort, steps


@pytest.mark.parametrize(("model", "start", "regulated", "others"), [
    ("rotary", (0.0, 0.1, 0.0, 0.0), [1], [0]),
    ("cartpole", (0.0, 0.1, 0.0, 0.0), [1], [0]),
])
def test_the_compiled_core_follows_the_runtime_s_own_model(model, start, regulated,
                                                            others) -> None:
    spec = plant_spec(model, {}, 4)
    sc = scenario(spec, start, 400, track_limit=None)
    make = law_factory("lqr", {}, sc.dt_s, (), spec)
    law = make(None)
    assert step_functions(spec)[0] == STEP
    m = run_batch(make, np.array([law.gains]), sc)[0]
    for k, draw in enumerate(sc.draws):
        ref = reference(make(law.gains), plant_model(spec, draw), start, 400, sc.dt_s,
                        regulated, others)
        got = m[k, 0]
        assert got[M_FALLEN] == 0 and got[M_STEPS] == ref[3]
        assert got[[M_ANGLE, M_POSITION, M_EFFORT]] == pytest.approx(ref[:3], rel=1e-12)
    assert not np.array_equal(m[0, 0], m[1, 0])  # the draws are different plants


def test_a_lab_s_plant_with_a_kernel_is_compiled_and_agrees_with_its_python_twin(lab) -> None:
    py, compiled = (plant_spec(f"labcart:{c}", {}, 4, (lab,)) for c in ("Cart", "KernelCart"))
    assert step_functions(py)[0] == PYTHON and step_functions(compiled)[0] == DERIV_SCALAR
    rows = np.array([[2.0, 30.0, 3.0, 5.0], [1.5, 30.0, 2.5, 5.0]])
    start = (0.0, 0.15, 0.0, 0.0)
    make = law_factory("lqr", {}, 2e-3, (), py)
    lqr = make(None)
    # The kernel has the default parameters built in: compare on the nominal plant.
    a = run_batch(make, np.array([lqr.gains]), scenario(py, start, 300, uncertainty=0.0))
    b = run_batch(law_factory("lqr", {}, 2e-3, (), compiled), np.array([lqr.gains]),
                  scenario(compiled, start, 300, uncertainty=0.0))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    law = law_factory("lablaw:Balance", {}, 2e-3, (lab,), py)
    c = run_batch(law, rows, scenario(py, start, 300, draws=1))
    assert c[:, 0, 0, M_FALLEN].tolist() == [0.0, 0.0]
    drawn = plant_model(py, scenario(py, start, 300, draws=1).draws[0])
    ref = reference(law(rows[0]), drawn, start, 300, 2e-3, [1], [0])
    assert c[0, 0, 0, [M_ANGLE, M_POSITION, M_EFFORT]] == pytest.approx(ref[:3], rel=1e-12)


def test_a_draw_that_trips_a_gate_fails_and_a_failing_candidate_costs_more_than_any_other(
        ) -> None:
    spec = plant_spec("cartpole", {}, 4)
    sc = scenario(spec, (0.0, 0.1, 0.0, 0.0), 2000, track_limit=0.2)
    make = law_factory("lqr", {}, sc.dt_s, (), spec)
    weak_cart = list(make(None).gains)
    weak_cart[0] = 1e-3  # q_x: the cart wanders 35 cm (the default weights: 12 cm)
    m = run_batch(make, np.array([make(None).gains, weak_cart]), sc)
    assert GATES[int(m[1, 0, 0, M_GATE])] == "track" and m[1, 0, 0, M_STEPS] < 2000
    per_draw = evaluation_costs(m, sc.steps)
    assert np.all(per_draw[1] >= FAILED_COST) and np.all(per_draw[0] < 1.0)
    costs = robust_cost(per_draw, 0.7)
    assert FAILED_COST <= costs[1] < 2 * FAILED_COST and costs[0] < 1.0
    # One failed draw of two is enough to fail a candidate, however good the other draw.
    assert robust_cost(np.array([[1e-3, FAILED_COST * 1.5]]), 0.7)[0] == FAILED_COST * 1.25


class NaNLaw:
    gain_names = ("k",)
    default_gains = (1.0,)

    def __init__(self, gains, **context):
        self.k = gains[0]

    def compute(self, state, t):
        return math.nan if t > 0.01 else self.k * 2e3  # 2000 N > 10 x 150 N: implausible


def test_a_law_s_bad_input_trips_the_input_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controllers, "_snapshot", controllers._snapshot)
    controllers.register_controller(controllers.ControllerSpec(
        "nan_law", NaNLaw, ("k",), (1.0,)), replace=True)
    spec = plant_spec("dip", {}, 4)
    sc = scenario(spec, (0.0, 0.1, -0.05, 0.0, 0.0, 0.0), 100, draws=1)
    m = run_batch(law_factory("nan_law", {}, sc.dt_s, (), spec), np.array([[1.0], [0.1]]), sc)
    assert GATES[int(m[0, 0, 0, M_GATE])] == "implausible_control"
    assert GATES[int(m[1, 0, 0, M_GATE])] == "non_finite_control"
    assert m[1, 0, 0, M_STEPS] == 6 and m[1, 0, 0, M_CHATTER] == 0.0


def test_draws_vary_every_physical_parameter_within_the_uncertainty_and_no_limit() -> None:
    spec = plant_spec("rotary", {"arm_damping_nms_per_rad": 0.002}, 4)
    a = draw_params(spec, 7, 0, 40, 0.1)
    assert a == draw_params(spec, 7, 0, 40, 0.1) and a != draw_params(spec, 7, 1, 40, 0.1)
    nominal = dict(spec[1]) | {k: v for k, v in plant_model(spec).params.to_dict().items()
                               if k not in dict(spec[1])}
    ratios = {k: np.array([dict(d)[k] / nominal[k] for d in a]) for k in nominal}
    assert np.all(ratios["gravity_mps2"] == 1) and np.all(ratios["max_voltage_v"] == 1)
    assert 0.1 < np.abs(ratios["arm_damping_nms_per_rad"] - 1).max() <= 0.2
    assert 0.05 < np.abs(ratios["arm_mass_kg"] - 1).max() <= 0.1
    assert nominal["arm_damping_nms_per_rad"] == 0.002  # plant.params are the nominal plant


def test_a_lab_s_plant_draws_its_numeric_params_and_keeps_the_others(lab) -> None:
    spec = plant_spec("labcart:Cart", {"pole_mass_kg": 0.25}, 4, (lab,))
    draws = [dict(d) for d in draw_params(spec, 1, 0, 20, 0.05)]
    masses = np.array([d["pole_mass_kg"] for d in draws]) / 0.25
    assert np.all(np.abs(masses - 1) <= 0.05) and masses.std() > 0
    assert all(d["max_force_n"] == 20.0 and d["gravity_mps2"] == 9.81 for d in draws)
    frictions = np.array([d["cart_friction_nspm"] for d in draws]) / 0.1
    assert np.abs(frictions - 1).max() > 0.05  # twice the spread for friction
    model = plant_model(spec, tuple(sorted(draws[0].items())))
    assert model.instance.m == draws[0]["pole_mass_kg"]


def test_the_default_box_keeps_each_gain_s_sign_and_a_degenerate_box_names_the_gain(
        lab) -> None:
    law = law_factory("lablaw:Balance", {}, 2e-3, (lab,), plant_spec("labcart:Cart", {}, 4,
                                                                        (lab,)))(None)
    lower, upper = _search_box(law, {})
    assert lower == (0.75, 15.0, 1.25, 2.5) and upper == (3.0, 60.0, 5.0, 10.0)
    assert _bounds_option(["k_x=-1,4", "k_theta = 10, 20"]) == {"k_x": [-1.0, 4.0],
                                                                "k_theta": [10.0, 20.0]}
    lower, upper = _search_box(law, _bounds_option(["k_x=-1,4"]))
    assert (lower[0], upper[0]) == (-1.0, 4.0)
    with pytest.raises(_Usage, match=r"gain k_x must have low < high, got \[2.0, 2.0\]"):
        _search_box(law, {"k_x": [2.0, 2.0]})
    with pytest.raises(_Usage, match="GAIN=LOW,HIGH"):
        _bounds_option(["k_x=1"])


def test_a_problem_on_a_lab_s_python_plant_and_law_is_not_compiled_and_costs_alike_in_processes(
        lab) -> None:
    s = Settings("lablaw:Balance", lower=(0.75, 15, 1.25, 2.5), upper=(3, 60, 5, 10),
                 draws=2, duration_s=0.5, rate_hz=200, starts=((0.0, 0.1, 0.0, 0.0),),
                 plant_model="labcart:Cart", search_path=(lab,))
    rows = np.array([[1.5, 30.0, 2.5, 5.0], [2.0, 30.0, 3.0, 5.0], [3.0, 44.0, 5.0, 8.0]])
    here = Problem(s, LocalEvaluator(s.controller, {}, 1, s.search_path, s.plant()))
    pool = LocalEvaluator(s.controller, {}, 2, s.search_path, s.plant())
    try:
        spread = Problem(s, pool)
        assert not here.compiled
        np.testing.assert_array_equal(here.costs(rows), spread.costs(rows))
        assert pool.workers == 2 and pool._pool is not None
    finally:
        pool.close()


def test_a_plant_the_law_does_not_fit_is_refused_naming_both() -> None:
    with pytest.raises((TuningError, ValueError), match="designed for plant model dip"):
        Problem(Settings("classical_smc", plant_model="rotary", starts=((0, 0.1, 0, 0),)),
                LocalEvaluator("classical_smc", {}, 1))


def test_create_model_is_the_reference_of_the_draws(lab) -> None:
    spec = plant_spec("cartpole", {"pole_mass_kg": 0.12}, 4)
    d = draw_params(spec, 0, 0, 3, 0.0)
    np.testing.assert_array_equal(packed_params(spec, d)[0],
                                  create_model("cartpole", {"pole_mass_kg": 0.12}).params
                                  .as_array())
    assert Path(lab).is_dir()


def test_a_tuning_of_the_two_input_helicopter_replays_identically_and_writes_its_files(
        tmp_path: Path) -> None:
    """Determinism and --resume's replay on a plant of two inputs (the compiled LQR on the
    helicopter's own kernel), and the outputs with a panel per input."""
    from controller_client.tuning.engine import best_of, optimise
    from controller_client.tuning.outputs import summarise, write_outputs
    from hil.config import load_config

    spec = plant_spec("helicopter", {}, 4)
    law = law_factory("lqr", {}, 5e-3, (), spec)(None)
    lower, upper = _search_box(law, {})
    s = Settings("lqr", lower=lower, upper=upper, budget=12, draws=2, batch_size=6,
                 duration_s=1.0, rate_hz=200, starts=((0.1, 0.2, 0.0, 0.0),),
                 plant_model="helicopter", track_limit_m=None, seed=2)
    whole = optimise(Problem(s, LocalEvaluator("lqr", {}, 1, (), spec)), [])
    stop = iter([False, True])
    part = optimise(Problem(s, LocalEvaluator("lqr", {}, 1, (), spec)), [],
                    should_stop=lambda: next(stop))
    assert len(part) == 1
    problem = Problem(s, LocalEvaluator("lqr", {}, 1, (), spec))
    resumed = optimise(problem, part)
    assert [b.costs for b in resumed] == [b.costs for b in whole]
    assert [b.candidates for b in resumed] == [b.candidates for b in whole]
    assert problem.compiled and best_of(whole)[1] < FAILED_COST
    record = summarise(problem, whole, run_id="t", complete=True, workers=1, elapsed_s=1.0,
                       base_config={"plant": {"model": "helicopter",
                                              "initial_state": [0.1, 0.2, 0.0, 0.0]},
                                    "controller": {"name": "lqr"}})
    write_outputs(tmp_path, record, problem)
    config = load_config(tmp_path / "tuned.yaml")
    assert config.controller.gains == [record["best_gains"][n] for n in record["gain_names"]]
    assert record["failed_draws"]["tuned"] == 0
    assert (tmp_path / "worst_draw.png").stat().st_size > 0

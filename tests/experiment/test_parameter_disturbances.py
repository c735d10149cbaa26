"""Parameter disturbances (`experiment.disturbances` entries naming a `parameter`): the
simulated cart-pole with its cart mass and pole mass changed during the run, against the
independent NumPy reference of tests/hil/dynamics (a Lagrangian mechanism and a textbook RK4)
stepped with the parameters the entries give, the change landing exactly at its time; the
schedule's refusals; the recording's `param_<name>` columns; a rig refusing them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import structlog

from hil.config import ConfigError, validate_config
from hil.dynamics import CartPoleParams, create_model
from hil.experiment.parameters import ParameterSchedule, ParameterSink
from plant_server.backends.sim import SimBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hil" / "dynamics"))
import reference_dynamics as ref

PERIOD_NS, SUBSTEPS, FORCE = 2_000_000, 4, 2.0
CHANGES = [{"parameter": "cart_mass_kg", "signal": "step", "at_s": 0.1, "value": 0.5},
           {"parameter": "pole_mass_kg", "at_s": 0.1513, "value": 0.2, "mode": "set"},
           {"parameter": "cart_mass_kg", "at_s": 0.2, "value": -0.25}]


def experiment(*disturbances: dict) -> object:
    return validate_config({"experiment": {"disturbances": list(disturbances)}}).experiment


def test_the_plant_follows_the_reference_with_the_parameters_changed_at_their_times() -> None:
    model = create_model("cartpole", {}, substeps=SUBSTEPS)
    schedule = ParameterSchedule.build(experiment(*CHANGES), model)
    assert schedule is not None
    backend = SimBackend(model, np.array([0.0, 0.1, 0.0, 0.0]), PERIOD_NS, None, None, schedule)
    backend.start(0)
    backend.apply([FORCE], 0)
    # The reference: each interval between two changes with its own parameters.
    base = CartPoleParams()
    eras = [(0.1, base), (0.1513, base.replace(cart_mass_kg=1.5)),
            (0.2, base.replace(cart_mass_kg=1.5, pole_mass_kg=0.2)),
            (1.0, base.replace(cart_mass_kg=1.25, pole_mass_kg=0.2))]
    state, t = np.array([0.0, 0.1, 0.0, 0.0]), 0.0
    for tick in range(1, 151):
        end = tick * PERIOD_NS * 1e-9
        for until, params in eras:  # integrate up to `end`, a step ending at each change
            if t < until - 1e-12 and t < end - 1e-12:
                stop = min(until, end)
                state = ref.step(ref.cartpole_mechanism(params), state, FORCE, stop - t,
                                 SUBSTEPS)
                t = stop
        np.testing.assert_allclose(backend.advance(tick * PERIOD_NS), state, rtol=0,
                                   atol=1e-11, err_msg=f"tick {tick}")
    assert model.params == eras[-1][1]
    unchanged = SimBackend(create_model("cartpole", {}, substeps=SUBSTEPS),
                           np.array([0.0, 0.1, 0.0, 0.0]), PERIOD_NS)
    unchanged.start(0)
    unchanged.apply([FORCE], 0)
    assert abs(unchanged.advance(150 * PERIOD_NS)[0] - backend.state[0]) > 1e-3


def test_the_schedule_records_each_change_and_the_rows_get_the_values_of_their_time() -> None:
    model = create_model("cartpole", {}, substeps=1)
    schedule = ParameterSchedule.build(experiment(*CHANGES), model)
    assert schedule is not None
    assert schedule.names == ("cart_mass_kg", "pole_mass_kg")
    assert schedule.events() == [
        {"time_s": 0.1, "cart_mass_kg": 1.5, "pole_mass_kg": 0.1},
        {"time_s": 0.1513, "cart_mass_kg": 1.5, "pole_mass_kg": 0.2},
        {"time_s": 0.2, "cart_mass_kg": 1.25, "pole_mass_kg": 0.2}]
    rows: list[tuple[float, ...]] = []

    class Rows:
        def record(self, row: tuple[float, ...]) -> None:
            rows.append(tuple(row))

    sink = ParameterSink(Rows(), schedule)
    for t in (0.0, 0.098, 0.1, 0.152, 0.3):
        sink.record((0, 0, t))
    assert [r[3:] for r in rows] == [(1.0, 0.1), (1.0, 0.1), (1.5, 0.1), (1.5, 0.2),
                                     (1.25, 0.2)]


@pytest.mark.parametrize(("entry", "said"), [
    ({"parameter": "cart_mass", "value": 0.5},
     "experiment.disturbances[0].parameter: 'cart_mass' is not a parameter of plant "
     "'cartpole' the runtime can change; its parameters: cart_mass_kg, pole_mass_kg, "
     "pole_length_m, pole_com_m, pole_inertia_kgm2, gravity_mps2, cart_friction_nspm, "
     "joint_friction_nmsprad"),
    ({"parameter": "max_force_n", "value": 5.0}, "'max_force_n' is not a parameter"),
    ({"parameter": "cart_mass_kg", "at_s": 1.0, "value": -1.0},
     "experiment.disturbances[0]: cart_mass_kg would be 0 from 1 s: cart_mass_kg must be > 0"),
])
def test_a_change_the_plant_cannot_take_is_refused_naming_it(entry: dict, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        ParameterSchedule.build(experiment(entry), create_model("cartpole", {}, substeps=1))
    assert said in str(refused.value)


def test_a_plug_in_plant_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cart.py").write_text(
        "import numpy as np\n\nclass Cart:\n    state_names = ('x', 'v')\n"
        "    state_units = ('m', 'm/s')\n    input_limit = 10.0\n\n"
        "    def derivatives(self, state, u):\n        return np.array([state[1], u[0]])\n")
    model = create_model("cart:Cart", {}, substeps=1, search_path=[str(tmp_path)])
    with pytest.raises(ConfigError, match=r"has no parameters the runtime can change during a "
                                          r"run \(a plug-in plant or an FMU\)"):
        ParameterSchedule.build(experiment({"parameter": "m", "value": 1.0}), model)


def test_a_rig_refuses_parameter_disturbances(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import free_endpoint

    from plant_server.main import main as plant_main

    (tmp_path / "rig.yaml").write_text(
        "plant: {backend: serial, model: cartpole, initial_state: [0, 0.05, 0, 0]}\n"
        "serial: {port: /dev/null}\nrecord: {enabled: false}\n"
        "experiment: {disturbances: [{parameter: cart_mass_kg, at_s: 1, value: 0.5}]}\n")
    try:
        code = plant_main(["--config", str(tmp_path / "rig.yaml"), "--out",
                           str(tmp_path / "o"), "--endpoint", free_endpoint()])
    finally:
        structlog.reset_defaults()  # its logs went to its run folder's file, now closed
    assert code == 2
    assert "a rig's inputs and parameters cannot be disturbed" in capsys.readouterr().err

"""Several inputs: one recorded column per input, named and united by the plant, through the
recording, its CSV and MCAP exports; an old one-input recording (`force_n`) still reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from synthetic_run import STATE_NAMES, make_run
from two_input_run import INPUTS, NAMES, UNITS, make_two_input_run, thrusts

from hil.cli import main
from hil.dynamics.inputs import Inputs
from hil.recording.recorder import Column, controller_columns, plant_columns, read_recording
from hil.recording.traces import InputTrace, recorded_inputs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_two_input_run(tmp_path_factory.mktemp("two") / "r", steps=500)


def test_the_input_columns_sit_between_the_states_and_flags_in_input_order() -> None:
    names = [c.name for c in plant_columns(NAMES, UNITS, INPUTS)]
    assert names == ["seq", "t_ns", "sim_time_s", *NAMES, "thrust_left", "thrust_right",
                     "flags", "lateness_ns", "control_seq", "answered_seq", "round_trip_ns"]
    ctrl = controller_columns(NAMES, UNITS, INPUTS)
    assert [c.name for c in ctrl][7:] == [*NAMES, "thrust_left", "thrust_right", "sigma",
                                          "mass_condition"]
    assert [(c.unit, c.is_input) for c in ctrl if c.name.startswith("thrust")] == \
        [("N", True), ("N", True)]


def test_a_two_input_recording_round_trips_names_units_and_meta(run: Path) -> None:
    for file in ("plant.rec", "controller.rec"):
        rec = read_recording(run / file)
        assert rec.inputs == ("thrust_left", "thrust_right")
        assert rec.meta["input_columns"] == ["thrust_left", "thrust_right"]
        assert rec.states == NAMES
        assert [rec.units[n] for n in rec.inputs] == ["N", "N"]
        assert [rec.labels[n] for n in rec.inputs] == ["thrust_left", "thrust_right"]
        assert "force_n" not in rec
    ctrl = read_recording(run / "controller.rec")
    np.testing.assert_array_equal(ctrl.input_matrix(), thrusts(500))  # exact, in order
    plant = read_recording(run / "plant.rec")
    np.testing.assert_array_equal(plant["thrust_right"][1:], thrusts(500)[:-1, 1])
    assert recorded_inputs(plant) == [InputTrace("thrust_left", "thrust_left", "N", 0.0, 40.0),
                                      InputTrace("thrust_right", "thrust_right", "N", 0.0, 40.0)]


@pytest.mark.parametrize("clash, other", [("z", "the state 'z'"),
                                          ("flags", "the fixed column 'flags' of plant.rec")])
def test_an_input_named_like_a_state_or_a_fixed_column_is_refused_naming_both(
        clash: str, other: str) -> None:
    inputs = Inputs(("thrust", clash), ("N", "N"), (0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ValueError, match=f"input '{clash}' has the name of {other}.*rename"):
        plant_columns(NAMES, UNITS, inputs)
    with pytest.raises(ValueError, match=r"the fixed column 'sigma' of controller\.rec"):
        controller_columns(NAMES, UNITS, Inputs.single("sigma", "V", 5.0))


def test_the_legacy_keywords_still_give_the_one_force_n_column() -> None:
    keyword = plant_columns(NAMES, UNITS, input_name="voltage", input_unit="V")
    positional = plant_columns(NAMES, UNITS, "voltage", "V")
    assert keyword == positional
    assert [c for c in keyword if c.name == "force_n"] == [Column("force_n", "V", "f8",
                                                                  "voltage")]
    assert [c.name for c in controller_columns(NAMES, UNITS)][13] == "force_n"


def test_csv_carries_each_input_by_name_and_unit(run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "plant.csv"
    assert main(["export", str(run), "--format", "csv", "--output", str(out)]) == 0
    assert "(inputs: thrust_left (N), thrust_right (N))" in capsys.readouterr().out
    with out.open() as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[3:11] == ["x [m]", "z [m]", "phi [rad]", "x_dot [m/s]", "z_dot [m/s]",
                            "phi_dot [rad/s]", "thrust_left [N]", "thrust_right [N]"]
    assert not any(h.startswith("force") for h in header)
    u = thrusts(500)
    assert [float(r[9]) for r in rows[2:]] == u[:-1, 0].tolist()  # 17 digits: exact
    assert [float(r[10]) for r in rows[2:]] == u[:-1, 1].tolist()


def test_npz_lists_the_input_columns(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "plant.npz"
    assert main(["export", str(run), "--format", "npz", "--output", str(out)]) == 0
    with np.load(out) as data:
        assert list(data["_inputs"]) == ["thrust_left", "thrust_right"]
        np.testing.assert_array_equal(data["thrust_left"][1:], thrusts(500)[:-1, 0])


def _mcap(path: Path) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    schemas: dict[str, dict] = {}
    messages: dict[str, list[dict]] = {}
    with path.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            schemas[channel.topic] = json.loads(schema.data)
            messages.setdefault(channel.topic, []).append(json.loads(message.data))
    return schemas, messages


def test_mcap_has_a_field_per_input_in_state_and_control_messages(run: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "run.mcap"
    assert main(["export", str(run), "--format", "mcap", "--output", str(out)]) == 0
    schemas, messages = _mcap(out)
    for topic in ("/plant/state", "/controller/control"):
        props = schemas[topic]["properties"]
        assert props["thrust_left"]["unit"] == props["thrust_right"]["unit"] == "N"
        assert "force" not in props and "force_n" not in props
    state_props = schemas["/plant/state"]["properties"]
    assert state_props["thrust_left"]["limits"] == state_props["thrust_right"]["limits"] == \
        [0.0, 40.0]
    u = thrusts(500)
    states = messages["/plant/state"]
    assert [m["thrust_left"] for m in states[1:]] == u[:-1, 0].tolist()
    assert [m["thrust_right"] for m in states[1:]] == u[:-1, 1].tolist()
    controls = messages["/controller/control"]
    assert [[m["thrust_left"], m["thrust_right"]] for m in controls] == u.tolist()


def test_an_old_force_n_recording_still_reads_as_one_named_limited_input(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = make_run(tmp_path / "old", steps=200)  # written as before several inputs
    rec = read_recording(old / "plant.rec")
    assert rec.inputs == ("force_n",) and rec.states == tuple(STATE_NAMES)
    assert "input_columns" not in rec.meta
    report = json.loads((old / "report.json").read_text())
    assert recorded_inputs(rec, report["plant"]) == [
        InputTrace("force_n", "force", "N", -150.0, 150.0)]
    assert read_recording(old / "controller.rec").states == tuple(STATE_NAMES)
    out = tmp_path / "old.mcap"
    assert main(["export", str(old), "--format", "mcap", "--output", str(out)]) == 0
    assert "(inputs: force (N))" in capsys.readouterr().out
    schemas, messages = _mcap(out)
    assert schemas["/plant/state"]["properties"]["force"]["unit"] == "N"
    assert [m["force"] for m in messages["/controller/control"]] == \
        read_recording(old / "controller.rec")["force_n"].tolist()

"""hil export --format mcap: read back with the mcap package's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from synthetic_run import STATE_NAMES, STATE_UNITS, make_run

from hil.cli import main
from hil.recording.recorder import read_recording


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_run(tmp_path_factory.mktemp("mcap") / "r", steps=800)
    report = json.loads((folder / "report.json").read_text())
    report["safety"] = {"events": [{"gate": "angle", "time": 0.5, "value": 1.2, "limit": 1.0},
                                  {"gate": "deadline_consecutive_misses", "time": 0.7,
                                   "value": 21, "limit": 20}]}
    report["safety"]["clear_events"] = [{"time": 0.6, "by": "operator", "cleared": "safety"}]
    report.setdefault("watchdog", {})["events"] = [{"time": 0.25, "time_to_safe_ms": 20.1}]
    report["gain_changes"] = [{"time": 0.1, "old": [2, 16], "new": [3, 16], "who": "me"}]
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def read(path: Path) -> tuple[dict, dict[str, list], dict[str, dict]]:
    """(schemas by topic, [(log_time, message)] by topic, metadata by name)."""
    schemas, messages = {}, {}
    with path.open("rb") as f:
        reader = make_reader(f)
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            schemas[channel.topic] = json.loads(schema.data)
            assert schema.encoding == "jsonschema" and channel.message_encoding == "json"
            messages.setdefault(channel.topic, []).append(
                (message.log_time, json.loads(message.data)))
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    return schemas, messages, metadata


def test_one_state_message_per_plant_step_with_names_and_units_in_the_schema(
        run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.mcap"
    assert main(["export", str(run), "--format", "mcap", "--output", str(out)]) == 0
    schemas, messages, metadata = read(out)
    plant = read_recording(run / "plant.rec")
    states = messages["/plant/state"]
    assert len(states) == plant.rows == 800
    props = schemas["/plant/state"]["properties"]
    for name, unit in zip(STATE_NAMES, STATE_UNITS, strict=True):
        assert props[name]["unit"] == unit and f"[{unit}]" in props[name]["description"]
    assert props["force"]["unit"] == "N"
    # Every value exactly, at the plant's publication time.
    assert [t for t, _ in states] == plant["t_ns"].tolist()
    for name in STATE_NAMES:
        assert np.array_equal([m[name] for _, m in states], plant[name])
    assert [m["seq"] for _, m in states] == plant["seq"].tolist()
    assert np.array_equal([m["force"] for _, m in states], plant["force_n"])
    timing = messages["/plant/timing"]
    assert len(timing) == 800 and timing[0][1]["round_trip_us"] is None
    assert timing[5][1]["round_trip_us"] == plant["round_trip_ns"][5] / 1000
    ctrl = read_recording(run / "controller.rec")
    controls = messages["/controller/control"]
    assert len(controls) == ctrl.rows and len(messages["/controller/timing"]) == ctrl.rows
    assert [t for t, _ in controls] == ctrl["send_ns"].tolist()  # offset 0 in this run
    assert np.array_equal([m["sigma"] for _, m in controls], ctrl["sigma"])
    # The config and the report ride along as metadata.
    assert yaml.safe_load(metadata["hil.config"]["config.yaml"])["run"]["duration_s"] == 0.8
    assert json.loads(metadata["hil.report"]["report.json"])["run_id"] == metadata["hil.run"][
        "run_id"]


def test_events_are_on_the_plant_clock_in_order(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.mcap"
    assert main(["export", str(run), "--format", "mcap", "--output", str(out)]) == 0
    _, messages, _ = read(out)
    events = messages["/events"]
    assert [e["kind"] for _, e in events] == ["gains", "watchdog", "safety", "clear",
                                              "deadline_gate"]
    plant = read_recording(run / "plant.rec")
    for log_time, e in events:
        step = int(np.searchsorted(plant["sim_time_s"], e["time"]))
        assert plant["t_ns"][step - 1] <= log_time <= plant["t_ns"][step]
    assert events[0][1]["detail"]["new"] == [3, 16]


def test_the_default_output_is_run_mcap_in_the_run_folder(run: Path) -> None:
    assert main(["export", str(run), "--format", "mcap"]) == 0
    _, messages, _ = read(run / "run.mcap")
    assert len(messages["/plant/state"]) == 800

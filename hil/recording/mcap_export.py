"""`hil export --format mcap`: a run folder as one MCAP file for Foxglove, Lichtblick and
PlotJuggler (https://mcap.dev: chunked, indexed, CRC-checked; JSON messages with JSON-schema).

Channels (each message a JSON object; each schema names its fields with their units):

- /plant/state, one per plant step (plant.rec row): seq, t (run time, s), each state by
  name, each input by name (`thrust_left`, `thrust_right`; `force` or `voltage` for one
  input; its schema gives its limits as `limits`: [low, high]), flags and
  safe/watchdog/safety/final booleans;
- /plant/timing, one per plant step: lateness_us, round_trip_us (newest applied control),
  deadline_met (the previous state was answered before this step);
- /controller/control, one per control sent (controller.rec row): control_seq, state_seq,
  each input by name, sigma, mass_condition;
- /controller/timing, one per control sent: state_to_controller_us, compute_us, lateness_us;
- /events, one per event in report.json: kind (safety, watchdog, clear, gains,
  deadline_gate), time (run time, s), detail.

Log times are on the plant's clock (`time.monotonic_ns` of the plant, ns): a plant step at
its publication time, a control at its send time moved onto the plant's clock by the
controller's measured clock offset (`clock.offset_ns` in controller.json; about 0 on one
host), an event at the plant time of its run time (interpolated over the plant's steps).
The run's config.yaml and report.json are attachments-as-metadata: records `hil.config`
({"config.yaml": text}) and `hil.report` ({"report.json": text}), plus `hil.run` (run id,
verdict, plant, controller, mode, rate).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer

from hil.recording.recorder import Recording, RecordingError, read_recording
from hil.recording.traces import InputTrace, field_names, recorded_inputs

__all__ = ["TOPICS", "write_mcap"]

TOPICS = ("/plant/state", "/plant/timing", "/controller/control", "/controller/timing",
          "/events")
_FLAGS = {"safe": 1, "watchdog": 2, "safety": 4, "final": 8}  # hil.link.messages FLAG_*


def _number(unit: str, description: str = "") -> dict[str, Any]:
    text = f"{description} [{unit}]".strip() if unit else description
    out: dict[str, Any] = {"type": ["number", "null"]}
    if text:
        out["description"] = text
    if unit:
        out["unit"] = unit  # an annotation: JSON schema allows keywords of one's own
    return out


def _input_field(trace: InputTrace, description: str) -> dict[str, Any]:
    """An input's schema: a number in its unit, with its limits as an annotation
    (`limits`: [low, high]) when the run says them."""
    field = _number(trace.unit, description)
    if trace.low is not None and trace.high is not None:
        field["limits"] = [trace.low, trace.high]
    return field


def _schema(title: str, properties: Mapping[str, Any]) -> bytes:
    return json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "title": title, "type": "object", "properties": dict(properties)}
                      ).encode()


def _f(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


def _state_names(plant: Recording) -> list[str]:
    desc = (plant.meta.get("plant") or {})
    names = list(desc.get("state_names") or [])
    if names and set(names) <= set(plant):
        return names
    return list(plant.states)


_FIXED_FIELDS = ("seq", "t", "flags", *_FLAGS, "control_seq", "state_seq", "sigma",
                 "mass_condition")


def _input_fields(plant: Recording, states: Sequence[str]) -> tuple[list[InputTrace], list[str]]:
    """The plant's inputs and a message field name for each (its name; its column where the
    name would hide a state or another field)."""
    traces = recorded_inputs(plant)
    return traces, field_names(traces, {*states, *_FIXED_FIELDS})


def write_mcap(run_dir: str | Path, output: str | Path) -> Recording:
    """Write the run in `run_dir` to `output` (MCAP); return its plant recording.

    Raises RecordingError / OSError when plant.rec cannot be read. controller.rec,
    report.json and config.yaml are optional: what is missing is left out.
    """
    run = Path(run_dir)
    plant = read_recording(run / "plant.rec")
    try:
        controller: Recording | None = read_recording(run / "controller.rec")
    except (OSError, RecordingError):
        controller = None
    report = _json(run / "report.json")
    ctrl_json = _json(run / "controller.json")
    with Path(output).open("wb") as f:
        _write(f, plant, controller, report, ctrl_json, run)
    return plant


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write(f: BinaryIO, plant: Recording, controller: Recording | None,
           report: Mapping[str, Any], ctrl_json: Mapping[str, Any], run: Path) -> None:
    writer = Writer(f, compression=CompressionType.ZSTD)
    writer.start(profile="", library="hil-runtime")
    names = _state_names(plant)
    traces, fields = _input_fields(plant, names)
    units = plant.units

    def channel(topic: str, title: str, properties: Mapping[str, Any]) -> int:
        schema = writer.register_schema(name=title, encoding=SchemaEncoding.JSONSchema,
                                        data=_schema(title, properties))
        return writer.register_channel(topic=topic, message_encoding=MessageEncoding.JSON,
                                       schema_id=schema)

    state_ch = channel("/plant/state", "hil.PlantState", {
        "seq": {"type": "integer", "description": "sequence number of the published state"},
        "t": _number("s", "run time"),
        **{n: _number(units.get(n, "")) for n in names},
        **{f: _input_field(tr, "input applied") for f, tr in zip(fields, traces, strict=True)},
        "flags": {"type": "integer", "description": "1 safe, 2 watchdog, 4 safety, 8 final"},
        **{k: {"type": "boolean"} for k in _FLAGS}})
    timing_ch = channel("/plant/timing", "hil.PlantTiming", {
        "seq": {"type": "integer"}, "lateness_us": _number("us", "plant wake-up lateness"),
        "round_trip_us": _number("us", "newest applied control: state published -> applied"),
        "deadline_met": {"type": ["boolean", "null"],
                         "description": "the previous state was answered before this step"}})
    t_ns, seq = plant["t_ns"], plant["seq"]
    state = np.stack([plant[n] for n in names], axis=1).tolist() if names else [[]] * len(seq)
    applied = plant.input_matrix().tolist()
    flags = plant["flags"].tolist()
    sim = plant["sim_time_s"].tolist()
    late = (plant["lateness_ns"] / 1000.0).tolist()
    rt = plant["round_trip_ns"]
    rt_us = np.where(rt >= 0, rt / 1000.0, np.nan).tolist()
    answered = plant["answered_seq"]
    met = [None if s < 1 else bool(a >= s - 1) for s, a in zip(seq.tolist(), answered.tolist(),
                                                                strict=True)]
    for i, (s, t) in enumerate(zip(seq.tolist(), t_ns.tolist(), strict=True)):
        msg = {"seq": s, "t": sim[i], **{n: _f(v) for n, v in zip(names, state[i], strict=True)},
               **{f: _f(v) for f, v in zip(fields, applied[i], strict=True)}, "flags": flags[i],
               **{k: bool(flags[i] & bit) for k, bit in _FLAGS.items()}}
        writer.add_message(state_ch, log_time=t, publish_time=t, sequence=s & 0xFFFFFFFF,
                           data=json.dumps(msg, separators=(",", ":")).encode())
        timing = {"seq": s, "lateness_us": late[i], "round_trip_us": _f(rt_us[i]),
                  "deadline_met": met[i]}
        writer.add_message(timing_ch, log_time=t, publish_time=t, sequence=s & 0xFFFFFFFF,
                           data=json.dumps(timing, separators=(",", ":")).encode())
    if controller is not None and controller.rows:
        _controls(writer, channel, controller, dict(zip([t.column for t in traces], fields,
                                                         strict=True)),
                  int((ctrl_json.get("clock") or {}).get("offset_ns") or 0))
    _events(writer, channel, report, plant)
    _metadata(writer, report, run)
    writer.finish()


def _controls(writer: Writer, channel: Any, rec: Recording, plant_fields: Mapping[str, str],
              offset_ns: int) -> None:
    """The controls sent, each input under the field the plant's messages give it (the
    controller records the same input columns as the plant)."""
    fields = [c for c in ("sigma", "mass_condition") if c in rec]
    inputs = {c: plant_fields.get(c, c) for c in rec.inputs}
    control_ch = channel("/controller/control", "hil.Control", {
        "control_seq": {"type": "integer"}, "state_seq": {"type": "integer",
                                                          "description": "the state it answers"},
        **{f: _number(rec.units.get(c, ""), "input sent") for c, f in inputs.items()},
        **{c: _number(rec.units.get(c, ""), c) for c in fields}})
    timing_ch = channel("/controller/timing", "hil.ControllerTiming", {
        "control_seq": {"type": "integer"},
        "state_to_controller_us": _number("us", "state published -> received"),
        "compute_us": _number("us", "the control law's own time"),
        "lateness_us": _number("us", "controller wake-up lateness")})
    send = (rec["send_ns"] + offset_ns).tolist()
    cseq, sseq = rec["control_seq"].tolist(), rec["state_seq"].tolist()
    sent = {f: rec[c].tolist() for c, f in inputs.items()}
    extra = {c: rec[c].tolist() for c in fields}
    leg = ((rec["rx_ns"] - rec["state_t_ns"]) / 1000.0).tolist()
    compute = (rec["compute_ns"] / 1000.0).tolist()
    late = (rec["lateness_ns"] / 1000.0).tolist()
    for i, t in enumerate(send):
        msg = {"control_seq": cseq[i], "state_seq": sseq[i],
               **{f: _f(v[i]) for f, v in sent.items()},
               **{c: _f(v[i]) for c, v in extra.items()}}
        writer.add_message(control_ch, log_time=t, publish_time=t,
                           sequence=cseq[i] & 0xFFFFFFFF,
                           data=json.dumps(msg, separators=(",", ":")).encode())
        timing = {"control_seq": cseq[i], "state_to_controller_us": leg[i],
                  "compute_us": compute[i], "lateness_us": late[i]}
        writer.add_message(timing_ch, log_time=t, publish_time=t,
                           sequence=cseq[i] & 0xFFFFFFFF,
                           data=json.dumps(timing, separators=(",", ":")).encode())


def timeline_events(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's events from report.json, by run time: safety gate trips (deadline gates
    among them), watchdog trips, clears and gain changes."""
    safety = report.get("safety") or {}
    events = []
    for e in safety.get("events") or []:
        gate = str(e.get("gate", ""))
        events.append({"kind": "deadline_gate" if gate.startswith("deadline") else "safety",
                       "time": e.get("time"), "detail": e})
    for e in (report.get("watchdog") or {}).get("events") or []:
        events.append({"kind": "watchdog", "time": e.get("time"), "detail": e})
    for e in safety.get("clear_events") or []:
        events.append({"kind": "clear", "time": e.get("time"), "detail": e})
    for e in report.get("gain_changes") or []:
        if isinstance(e, dict):
            events.append({"kind": "gains", "time": e.get("time"), "detail": e})
    good = [e for e in events if isinstance(e["time"], int | float) and math.isfinite(e["time"])]
    return sorted(good, key=lambda e: e["time"])


def _events(writer: Writer, channel: Any, report: Mapping[str, Any], plant: Recording) -> None:
    ch = channel("/events", "hil.Event", {
        "kind": {"type": "string", "enum": ["safety", "watchdog", "clear", "gains",
                                            "deadline_gate"]},
        "time": _number("s", "run time"), "detail": {"type": "object"}})
    if not plant.rows:
        return
    for i, e in enumerate(timeline_events(report)):
        t = int(np.interp(e["time"], plant["sim_time_s"], plant["t_ns"]))
        data = e if _finite_json(e) else {**e, "detail": str(e["detail"])}
        writer.add_message(ch, log_time=t, publish_time=t, sequence=i,
                           data=json.dumps(data, default=str).encode())


def _finite_json(value: Any) -> bool:
    try:
        json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return False
    return True


def _metadata(writer: Writer, report: Mapping[str, Any], run: Path) -> None:
    with contextlib.suppress(OSError):
        writer.add_metadata("hil.config", {"config.yaml": (run / "config.yaml").read_text()})
    if report:
        writer.add_metadata("hil.report", {"report.json": json.dumps(report, default=str)})
        plant = report.get("plant") or {}
        facts: Sequence[tuple[str, Any]] = (
            ("run_id", report.get("run_id")), ("verdict", report.get("verdict")),
            ("plant", plant.get("name") if isinstance(plant, dict) else plant),
            ("controller", report.get("controller")), ("mode", report.get("mode")),
            ("rate_hz", report.get("rate_hz")))
        writer.add_metadata("hil.run", {k: str(v) for k, v in facts if v is not None})

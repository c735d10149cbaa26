"""The experiment in the report: metrics measured from a plant recording written by the
recorder (with its disturbance columns), the gates that bound them, the summary, `hil
compare` and report.html."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hil.config import load_config, validate_config
from hil.dynamics.inputs import Inputs
from hil.experiment.plan import disturbance_table
from hil.recording.appended import ExperimentSink, experiment_columns
from hil.recording.recorder import Recorder, plant_columns, read_recording
from hil.reporting.experiment import experiment_section
from hil.reporting.history import compare
from hil.reporting.html import write_html_report
from hil.reporting.report import build_report, summary_table

DT = 0.002
DESC = {"name": "cart", "state_names": ["x", "x_dot"], "state_units": ["m", "m/s"],
        "input_names": ["force"], "input_units": ["N"], "input_limits": [[-5.0, 5.0]],
        "equilibrium": [0.0, 0.0], "equilibrium_input": [0.0], "regulated": ["x"],
        "wraps": []}
EXPERIMENT = {"reference": [{"state": "x", "signal": "step", "at_s": 0.5, "value": 0.4}],
              "disturbances": [{"input": "force", "signal": "pulse", "at_s": 2.0,
                                "duration_s": 0.2, "value": 1.0}]}


def crossing(share: float, tau: float) -> float:
    """When the lag reaches `share` of its value at the window's last sample (1.998 s): the
    final value python-control's step_info measures against."""
    final = 1 - math.exp(-(2.0 - DT - 0.5) / tau)
    return -tau * math.log(1 - share * final)


def record_run(folder: Path, tau: float) -> dict:
    """plant.rec of a first-order lag to the step (time constant `tau`), written through the
    plant's own sink; plant.json's experiment section measured from it."""
    folder.mkdir()
    experiment = validate_config({"experiment": EXPERIMENT}).experiment
    inputs = Inputs.from_description(DESC)
    columns = plant_columns(DESC["state_names"], DESC["state_units"], inputs) \
        + experiment_columns(inputs, actuator=False, disturbance=True)
    table = disturbance_table(experiment, ["force"])
    assert table is not None
    recorder = Recorder(folder / "plant.rec", columns, {"plant": DESC}, writer="thread")
    sink = ExperimentSink(recorder, None, table)
    for k in range(1501):
        t = k * DT
        x = 0.4 * (1 - math.exp(-(t - 0.5) / tau)) if t >= 0.5 else 0.0
        sink.record((k, k, t, x, 0.0, 2.0 * (0.4 - x), 0, 0, k, k, 0))
    recorder.close()
    return experiment_section(experiment, DESC, folder / "plant.rec", 3.0)


def report_of(section: dict, **metrics: float) -> dict:
    config = load_config(None, {"run.mode": "lockstep", "gates.metrics": metrics})
    plant = {"end_reason": "duration", "plant": DESC, "final_state": [0.4, 0.0],
             "duration_s": 3.0, "cycles": 1501, "experiment": section, "exit_code": 0,
             "deadline": {"total": 1500, "misses": 0, "miss_ratio": 0.0, "max_consecutive": 0},
             "watchdog": {"trips": 0}}
    return build_report("r1", config.model_dump(mode="json"), plant,
                        {"exit_code": 0, "controller": "lqr"})


def test_the_recording_carries_the_pulse_and_the_metrics_are_the_lags(tmp_path: Path) -> None:
    section = record_run(tmp_path / "a", tau=0.2)
    rec = read_recording(tmp_path / "a" / "plant.rec")
    on = (rec["sim_time_s"] >= 2.0) & (rec["sim_time_s"] < 2.2 - 1e-9)
    assert np.all(rec["disturbance_force"][on] == 1.0)
    assert np.all(rec["disturbance_force"][~on] == 0.0)
    x = section["states"]["x"]
    assert x["window_end_s"] == 2.0  # the step's window ends where the pulse starts
    assert x["rise_time_s"] == pytest.approx(crossing(0.9, 0.2) - crossing(0.1, 0.2), abs=DT)
    assert x["settling_time_s"] == pytest.approx(crossing(0.98, 0.2), abs=DT)
    assert x["overshoot_pct"] == 0.0
    assert x["iae"] == pytest.approx(0.4 * 0.2 * (1 - math.exp(-2.5 / 0.2)), rel=1e-3)
    # u = 2 (0.4 - x): 0.8 until the step, then 0.8 e^(-t/tau) to the end (2.5 s later)
    assert section["inputs"]["force"]["effort"] == pytest.approx(
        0.64 * 0.5 + 0.64 * 0.2 / 2 * (1 - math.exp(-2 * 2.5 / 0.2)), rel=1e-3)
    assert section["inputs"]["force"]["peak_abs"] == pytest.approx(0.8)
    assert section["final_target"] == [0.4, 0.0]


def test_a_bound_fails_the_verdict_naming_the_metric_its_value_and_bound(tmp_path: Path) -> None:
    section = record_run(tmp_path / "a", tau=0.2)
    passed = report_of(section, **{"x.rise_time_s": 0.5})
    assert passed["verdict"] == "PASS"
    failed = report_of(section, **{"x.rise_time_s": 0.3, "force.peak_abs": 5.0})
    assert failed["verdict"] == "FAIL"
    gate = next(g for g in failed["gates"] if g["name"] == "metrics.x.rise_time_s")
    assert gate["critical"] and not gate["passed"] and gate["threshold"] == 0.3
    assert gate["detail"] == f"x.rise_time_s = {gate['value']:.4g} is beyond its bound 0.3"
    unknown = report_of(section, **{"x.overshot_pct": 10})
    gate = next(g for g in unknown["gates"] if g["name"] == "metrics.x.overshot_pct")
    assert not gate["passed"] and "its metrics: force.effort, " in gate["detail"]
    rise = section["metrics"]["x.rise_time_s"]
    text = summary_table(failed)
    assert f"metrics.x.rise_time_s: x.rise_time_s = {rise:.4g} is beyond its bound 0.3" in text
    assert "  x: iae " in text and f"rise_time_s {rise:.3g}" in text


def test_compare_sets_two_laws_metrics_side_by_side(tmp_path: Path) -> None:
    fast = report_of(record_run(tmp_path / "a", tau=0.1))
    slow = report_of(record_run(tmp_path / "b", tau=0.3))
    rows = {r["name"]: r for r in compare(fast, slow) if r["section"] == "metric"}
    rise = rows["x.rise_time_s"]
    assert rise["a"] == pytest.approx(crossing(0.9, 0.1) - crossing(0.1, 0.1), abs=DT)
    assert rise["b"] == pytest.approx(crossing(0.9, 0.3) - crossing(0.1, 0.3), abs=DT)
    assert rise["change"] == pytest.approx(rise["b"] - rise["a"])


def test_report_html_draws_the_reference_and_lists_the_metrics(tmp_path: Path) -> None:
    section = record_run(tmp_path / "a", tau=0.2)
    (tmp_path / "a" / "report.json").write_text(json.dumps(report_of(section)))
    page = write_html_report(tmp_path / "a").read_text()
    assert "<h2>Experiment metrics</h2>" in page
    rise = section["metrics"]["x.rise_time_s"]
    assert f"<td>x</td><td>rise_time_s</td><td>{rise:.4g}</td>" in page
    assert (tmp_path / "a" / "trajectories.png").stat().st_size > 10_000


def test_a_run_without_an_experiment_has_no_section_and_dumps_as_before() -> None:
    from hil.config import dump_config

    config = load_config(None)
    assert "experiment" not in dump_config(config) and "metrics" not in dump_config(config)
    report = report_of(None)  # type: ignore[arg-type]
    assert "experiment" not in report

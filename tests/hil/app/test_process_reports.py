"""Each process's report is always written: a non-finite number becomes null with a flag,
and a report that cannot be serialised still leaves its outline (hil/app/process.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from conftest import free_endpoint

from hil.app.process import ProcessContext, run_process, write_json

BIN = Path(sys.executable).parent


def test_non_finite_numbers_become_null_and_are_listed_by_path(tmp_path: Path) -> None:
    path = tmp_path / "plant.json"
    write_json(path, {"final_state": np.array([0.5, math.nan, -math.inf]),
                      "deadline": {"miss_ratio": math.inf, "total": 3},
                      "events": [{"value": np.float64(math.nan)}], "end_reason": "duration"})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    report = json.loads(text)
    assert report["final_state"] == [0.5, None, None]
    assert report["deadline"] == {"miss_ratio": None, "total": 3}
    assert report["events"] == [{"value": None}]
    assert report["end_reason"] == "duration"
    assert report["non_finite_values"] == {
        "final_state.1": "nan", "final_state.2": "-inf", "deadline.miss_ratio": "inf",
        "events.0.value": "nan"}


def test_a_finite_report_is_written_unchanged_without_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "plant.json"
    data = {"final_state": [0.0, 0.1], "cycles": 7}
    write_json(path, data)
    assert json.loads(path.read_text()) == data


def run_body(tmp_path: Path, body: Any) -> tuple[int, dict[str, Any]]:
    code = run_process("plant", ["--out", str(tmp_path), "--run-id", "r1"], "plant.endpoint",
                       body)
    return code, json.loads((tmp_path / "plant.json").read_text())


def test_run_process_writes_a_report_holding_nan(tmp_path: Path) -> None:
    def body(_ctx: ProcessContext) -> tuple[int, dict[str, Any]]:
        return 1, {"end_reason": "safety: non_finite_state", "final_state": [math.nan, 0.0]}

    code, report = run_body(tmp_path, body)
    assert code == 1
    assert report["end_reason"] == "safety: non_finite_state"
    assert report["final_state"] == [None, 0.0]
    assert report["non_finite_values"] == {"final_state.0": "nan"}
    assert report["exit_code"] == 1 and report["run_id"] == "r1"


def test_an_unserialisable_report_still_leaves_its_outline(tmp_path: Path) -> None:
    def body(_ctx: ProcessContext) -> tuple[int, dict[str, Any]]:
        return 0, {"end_reason": "duration", "odd": object()}

    code, report = run_body(tmp_path, body)
    assert code == 0
    assert report["end_reason"] == "duration" and report["exit_code"] == 0
    assert report["report_error"] == "TypeError: not JSON serialisable: object"


def test_a_plant_that_diverges_to_nan_still_writes_every_report(tmp_path: Path) -> None:
    # gravity 1e300 makes the first simulated step NaN: the non_finite_state gate's own case.
    config = tmp_path / "diverges.yaml"
    config.write_text("run:\n  mode: lockstep\n  duration_s: 1\n"
                      "plant:\n  params:\n    gravity_mps2: 1.0e+300\n"
                      "record:\n  html: false\n  history_db: null\n")
    out = tmp_path / "run"
    done = subprocess.run([str(BIN / "hil"), "run", "--config", str(config), "--endpoint",
                           free_endpoint(), "--out", str(out)], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 1, done.stderr  # a failed gate, not a crash
    plant = json.loads((out / "plant.json").read_text())
    assert plant["end_reason"] == "safety: non_finite_state"
    assert plant["final_state"] == [None] * 6
    assert plant["non_finite_values"] == {f"final_state.{i}": "nan" for i in range(6)}
    controller = json.loads((out / "controller.json").read_text())
    assert controller["end_reason"] == "plant ended the run: safety: non_finite_state"
    assert controller["non_finite_values"]  # the NaN states it saw
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "FAIL" and report["final_state"] == [None] * 6
    assert set(report["non_finite_values"]) == {"plant", "controller"}
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["at_target"]["passed"] is False and gates["at_target"]["value"] is None
    assert "has no final value (null or absent in the plant's report" in gates["at_target"][
        "detail"]
    assert "final state: [non-finite, non-finite" in done.stdout

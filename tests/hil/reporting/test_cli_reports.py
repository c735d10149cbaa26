"""hil report, history and compare on finished run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_run import make_run

from hil.cli import main
from hil.reporting import history


def test_hil_report_rewrites_the_html_and_prints_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = make_run(tmp_path / "r", steps=300, recordings=False)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "verdict: " in out and f"html: {run / 'report.html'}" in out
    assert (run / "report.html").exists() and (run / "latency_percentiles.png").exists()


def test_hil_report_merges_the_processes_json_when_report_json_is_missing(
        tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", steps=300, recordings=False)
    before = json.loads((run / "report.json").read_text())
    (run / "report.json").unlink()
    assert main(["report", str(run)]) == 0
    after = json.loads((run / "report.json").read_text())
    assert after["gates"] == before["gates"] and after["score"] == before["score"]


def test_hil_report_on_a_folder_without_a_run_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_hil_history_lists_runs_newest_first(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "h.db"
    assert main(["history", "--db", str(db)]) == 0
    assert "no runs" in capsys.readouterr().out
    for i, day in enumerate(("20", "26", "23")):
        report = json.loads((make_run(tmp_path / f"r{i}", run_id=f"run-{i}", steps=200,
                                      recordings=False) / "report.json").read_text())
        report["started_at"] = f"2026-11-{day}T10:00:00Z"
        history.append_run(db, report, tmp_path / f"r{i}")
    assert main(["history", "--db", str(db), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["date", "run", "id"]
    assert [line.split()[1] for line in lines[1:3]] == ["run-1", "run-2"]
    assert "dip" in lines[1] and "classical_smc" in lines[1] and "PASS" in lines[1]
    assert main(["history", "--db", str(db), "--limit", "0"]) == 2


def test_reading_a_history_that_is_not_there_creates_nothing_and_says_where_it_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "typo" / "h.db"
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"no runs in {db} (no history there yet" in out and "record.history_db" in out
    assert main(["compare", "run-a", "run-b", "--db", str(db)]) == 2
    assert "nor a run id in" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()  # neither the file nor its folder was made


def test_a_folder_given_as_the_history_is_named(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["history", "--db", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"hil history: {tmp_path} is a folder: give the history file " \
                  "(record.history_db, runs/history.db by default)\n"


def test_hil_compare_takes_folders_or_run_ids_from_the_history(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = make_run(tmp_path / "a", run_id="run-a", steps=300, recordings=False)
    b = make_run(tmp_path / "b", run_id="run-b", steps=300, recordings=False, rt_scale=2.0)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "round_trip_p99 (us)" in out and "FAIL" in out
    db = tmp_path / "h.db"
    history.append_run(db, json.loads((b / "report.json").read_text()), b)
    assert main(["compare", str(a), "run-b", "--db", str(db)]) == 0
    assert "run-b" in capsys.readouterr().out
    assert main(["compare", str(a), "nothing-like-it", "--db", str(db)]) == 2
    assert "neither a run folder" in capsys.readouterr().err

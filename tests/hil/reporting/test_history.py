"""Run history: runs listed newest first, versioned schema with migrations, comparison."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from hil.reporting import history
from hil.reporting.history import (
    HistoryError,
    append_run,
    compare,
    format_compare,
    get_run,
    list_runs,
)


def report(run_id: str, started_at: str, p99: float = 640.0, verdict: str = "PASS",
           **extra: Any) -> dict[str, Any]:
    r = {
        "schema": "hil-report/1", "run_id": run_id, "started_at": started_at,
        "mode": "realtime", "rate_hz": 1000.0, "duration_s": 3.0, "controller": "classical_smc",
        "plant": {"name": "dip"}, "verdict": verdict, "score": 100.0,
        "latency_us": {"round_trip": {"p50": 380.0, "p99": p99, "max": 2000.0, "count": 3000},
                       "compute": {"p50": 3.7, "p99": 10.4, "max": 156.0, "count": 3000}},
        "deadline": {"misses": 22, "miss_ratio": 0.0073, "max_consecutive": 8, "total": 3000},
        "gates": [{"name": "at_target", "value": 1e-9, "threshold": 0.02, "passed": True,
                   "unit": "rad", "weight": 3.0, "critical": True},
                  {"name": "round_trip_p99", "value": p99, "threshold": 850.0,
                   "passed": p99 <= 850, "unit": "us", "weight": 2.0, "critical": False}],
    }
    r.update(extra)
    return r


def schema_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
                   .fetchone()[0])


def test_runs_are_listed_newest_first_with_their_key_figures(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "history.db"  # the folder is created
    append_run(db, report("r-old", "2026-11-20T10:00:00Z"), tmp_path / "r-old")
    append_run(db, report("r-new", "2026-11-26T10:00:00Z", p99=700.0, verdict="FAIL"), "x/r-new")
    append_run(db, report("r-mid", "2026-11-23T10:00:00Z"), "x/r-mid")
    runs = list_runs(db, limit=10)
    assert [r["run_id"] for r in runs] == ["r-new", "r-mid", "r-old"]
    new = runs[0]
    assert (new["date"], new["plant"], new["controller"], new["verdict"], new["score"]) == (
        "2026-11-26T10:00:00Z", "dip", "classical_smc", "FAIL", 100.0)
    assert (new["round_trip_p50_us"], new["round_trip_p99_us"], new["miss_ratio"]) == (
        380.0, 700.0, 0.0073)
    assert new["run_dir"] == "x/r-new"
    assert [r["run_id"] for r in list_runs(db, limit=1)] == ["r-new"]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        list_runs(db, limit=0)


def test_a_run_without_a_start_time_is_dated_when_appended(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    r = report("r1", "")
    del r["started_at"]
    append_run(db, r, "d")
    assert list_runs(db)[0]["date"].endswith("Z")


def test_get_run_returns_the_report_and_accepts_a_unique_prefix(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    append_run(db, report("20261126-101010-aaaa", "2026-11-26T10:10:10Z"), "d1")
    append_run(db, report("20261126-101010-abbb", "2026-11-26T10:10:10Z"), "d2")
    run = get_run(db, "20261126-101010-aaaa")
    assert run is not None and run["report"]["latency_us"]["round_trip"]["p99"] == 640.0
    assert get_run(db, "20261126-101010-ab")["run_dir"] == "d2"
    assert get_run(db, "nope") is None
    with pytest.raises(HistoryError, match=r"ambiguous.*give more"):
        get_run(db, "20261126-101010-a")


def test_appending_a_run_id_again_replaces_it(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    append_run(db, report("r1", "2026-11-26T10:00:00Z", verdict="FAIL"), "d")
    append_run(db, report("r1", "2026-11-26T10:00:00Z", verdict="PASS"), "d")
    runs = list_runs(db)
    assert len(runs) == 1 and runs[0]["verdict"] == "PASS"


def test_non_finite_figures_are_stored_as_null(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    r = report("r1", "2026-11-26T10:00:00Z", score=True)
    r["latency_us"]["round_trip"]["p99"] = None
    append_run(db, r, "d")
    run = list_runs(db)[0]
    assert run["round_trip_p99_us"] is None and run["score"] is None


def test_a_new_database_is_at_the_current_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    append_run(db, report("r1", "2026-11-26T10:00:00Z"), "d")  # made by its first writer
    assert schema_version(db) == history.SCHEMA_VERSION == 2  # v2: the doctor table
    list_runs(db)  # opening again migrates nothing
    assert schema_version(db) == 2


def test_migrations_run_in_order_each_in_its_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "h.db"
    append_run(db, report("r1", "2026-11-26T10:00:00Z"), "d")  # a current database
    current = history.SCHEMA_VERSION

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT")
        conn.execute("UPDATE runs SET notes = 'from v1'")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("the last migration failed")

    monkeypatch.setattr(history, "_MIGRATIONS", [*history._MIGRATIONS, add_notes, broken])
    monkeypatch.setattr(history, "SCHEMA_VERSION", current + 2)
    with pytest.raises(RuntimeError, match="the last migration failed"):
        list_runs(db)
    assert schema_version(db) == current + 1  # add_notes committed, broken rolled back
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT notes FROM runs").fetchone()[0] == "from v1"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables


def test_a_database_from_a_newer_hil_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    append_run(db, report("r1", "2026-11-26T10:00:00Z"), "d")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(HistoryError, match="version 7 was written by a newer hil"):
        list_runs(db)


def test_a_file_that_is_not_a_run_history_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(HistoryError, match="not a hil run history"):
        list_runs(other)
    text = tmp_path / "text.db"
    text.write_text("just some text that is long enough to not be a database header" * 4)
    with pytest.raises(HistoryError, match=r"text\.db"):
        list_runs(text)
    no_version = tmp_path / "nv.db"
    with sqlite3.connect(no_version) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    with pytest.raises(HistoryError, match="no schema_version"):
        list_runs(no_version)


def test_concurrent_appends_all_land(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    threads = [threading.Thread(target=append_run,
                                args=(db, report(f"r{i}", f"2026-11-26T10:00:{i:02d}Z"), "d"))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["run_id"] for r in list_runs(db)] == [f"r{i}" for i in reversed(range(8))]


def test_compare_puts_gates_latencies_and_misses_side_by_side_with_the_change() -> None:
    a = report("ra", "2026-11-20T10:00:00Z", p99=640.0)
    b = report("rb", "2026-11-26T10:00:00Z", p99=900.0, verdict="FAIL", score=85.0)
    b["gates"].append({"name": "safety_trips", "value": 0, "threshold": 0, "passed": True})
    del b["latency_us"]["compute"]
    rows = {(r["section"], r["name"]): r for r in compare(a, b)}
    assert rows[("run", "verdict")]["a"] == "PASS" and rows[("run", "verdict")]["b"] == "FAIL"
    assert rows[("run", "verdict")]["change"] is None
    assert rows[("run", "score")]["change"] == -15.0
    g = rows[("gate", "round_trip_p99")]
    assert (g["a"], g["b"], g["change"], g["a_passed"], g["b_passed"], g["unit"]) == (
        640.0, 900.0, 260.0, True, False, "us")
    assert g["change_pct"] == pytest.approx(100 * 260 / 640)
    only_b = rows[("gate", "safety_trips")]
    assert only_b["a"] is None and only_b["b"] == 0 and only_b["change"] is None
    assert rows[("latency", "round_trip p99")]["change"] == 260.0
    assert rows[("latency", "compute max")]["b"] is None
    assert rows[("deadline", "misses")]["change"] == 0.0
    assert rows[("deadline", "misses")]["change_pct"] == 0.0


def test_an_old_reports_upright_gate_is_compared_with_the_new_at_target_gate() -> None:
    old = report("ra", "2026-11-20T10:00:00Z")
    old["gates"][0] = {**old["gates"][0], "name": "upright_at_end", "value": 0.0125}
    new = report("rb", "2026-11-26T10:00:00Z")
    new["gates"][0] = {**new["gates"][0], "value": 0.0105, "state": "theta2"}
    rows = [r for r in compare(old, new) if r["section"] == "gate"]
    assert [r["name"] for r in rows] == ["at_target", "round_trip_p99"]
    assert (rows[0]["a"], rows[0]["b"], rows[0]["unit"]) == (0.0125, 0.0105, "rad")
    assert rows[0]["change"] == pytest.approx(-0.002)
    assert next(r["name"] for r in compare(new, old) if r["section"] == "gate") == "at_target"


def test_a_gate_in_different_units_in_the_two_runs_has_no_change() -> None:
    a = report("ra", "2026-11-20T10:00:00Z")
    b = report("rb", "2026-11-26T10:00:00Z")
    b["gates"][0] = {**b["gates"][0], "value": 1.55, "threshold": 0.05, "unit": "m",
                     "passed": False}
    row = next(r for r in compare(a, b) if r["name"] == "at_target")
    assert (row["a"], row["b"], row["change"], row["change_pct"], row["unit"]) == (
        1e-9, 1.55, None, None, "rad|m")


def test_format_compare_is_a_readable_table() -> None:
    a = report("ra", "2026-11-20T10:00:00Z", p99=640.0)
    b = report("rb", "2026-11-26T10:00:00Z", p99=900.0, verdict="FAIL")
    b["deadline"]["misses"] = 0
    text = format_compare(compare(a, b))
    lines = text.splitlines()
    assert "-- gate" in lines and "-- latency" in lines
    rt = next(line for line in lines if line.startswith("round_trip_p99 (us)"))
    assert "640 pass" in rt and "900 FAIL" in rt and "+260" in rt and "+40.6%" in rt
    misses = next(line for line in lines if line.startswith("misses"))
    assert misses.split()[-2:] == ["-22", "-100%"]


def test_compare_puts_each_inputs_limits_side_by_side_by_name() -> None:
    a = report("ra", "2026-11-20T10:00:00Z")
    a["plant"] = {"name": "dip", "max_force_n": 150.0}  # an old report: one input, force
    b = report("rb", "2026-11-26T10:00:00Z")
    b["plant"] = {"name": "bicopter", "input_names": ["thrust_left", "thrust_right"],
                  "input_units": ["N", "N"], "input_limits": [[0.0, 40.0], [0.0, 35.0]]}
    rows = [r for r in compare(a, b) if r["section"] == "input"]
    assert [(r["name"], r["a"], r["b"], r["unit"]) for r in rows] == [
        ("force low", -150.0, None, "N"), ("force high", 150.0, None, "N"),
        ("thrust_left low", None, 0.0, "N"), ("thrust_left high", None, 40.0, "N"),
        ("thrust_right low", None, 0.0, "N"), ("thrust_right high", None, 35.0, "N")]
    c = report("rc", "2026-11-27T10:00:00Z")
    c["plant"] = {**b["plant"], "input_units": ["N", "kN"], "input_limits": [40.0, 30.0]}
    same = {r["name"]: r for r in compare(b, c) if r["section"] == "input"}
    assert same["thrust_left low"]["change"] == -40.0  # 0 .. 40 became -40 .. 40
    assert same["thrust_right high"]["unit"] == "N|kN"
    assert same["thrust_right high"]["change"] is None
    assert "-- input" in format_compare(compare(a, b))
    assert not [r for r in compare(report("x", "2026-11-20T10:00:00Z"),
                                   report("y", "2026-11-20T10:00:00Z"))
                if r["section"] == "input"]  # reports that describe no input
